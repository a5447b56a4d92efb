//go:build !linux && !darwin

package image

func readBootID() string { return "" }
