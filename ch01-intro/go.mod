module floodgate/ch01-intro

go 1.25
