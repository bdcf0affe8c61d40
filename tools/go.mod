module floodgate/tools

go 1.25

tool floodgate/tools/cmd/wb
