module floodgate/capstone

go 1.25
