module floodgate/tools

go 1.25

tool floodgate/tools/cmd/wb

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	golang.org/x/tools v0.42.0
)

require (
	floodgate/ch03-networking v0.0.0
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/mod v0.33.0 // indirect
	golang.org/x/sync v0.19.0 // indirect
	golang.org/x/sys v0.41.0
)

replace floodgate/ch03-networking => ../ch03-networking
