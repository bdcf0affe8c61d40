module floodgate/ch05-edge

go 1.25
