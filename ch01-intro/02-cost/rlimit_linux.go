package cost

import "syscall"

func stackLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}
