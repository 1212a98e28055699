package main

import "fmt"

func runOperator(cmd string, args []string) error {
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}
