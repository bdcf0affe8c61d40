module floodgate/ch03-networking

go 1.25
