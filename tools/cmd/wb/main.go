// Command wb is the Floodgate workbook command.
package main

func main() {}
