module floodgate/ch02-concurrency

go 1.25
