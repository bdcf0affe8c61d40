module floodgate/ch04-tuning

go 1.25
