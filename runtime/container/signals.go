package container

import (
	"strconv"
	"strings"
)

// Linux signal numbers: the guest is always Linux, whatever the host is, so
// the host's syscall constants (different on macOS) must not be used.
var signals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
	"FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
	"TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
	"TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
	"PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}

const (
	sigKILL = 9
	sigTERM = 15
)

// ParseSignal reads "SIGTERM", "term", "15" or "RTMIN+3".
func ParseSignal(s string) (int, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, errf(ErrInvalid, "signal %d is out of range (1-64)", n)
		}
		return n, nil
	}
	u := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if n, ok := signals[u]; ok {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(u, "RTMIN"); ok {
		off := 0
		if rest != "" {
			var err error
			if off, err = strconv.Atoi(strings.TrimPrefix(rest, "+")); err != nil || off < 0 || off > 30 {
				return 0, errf(ErrInvalid, "invalid signal %q", s)
			}
		}
		return 34 + off, nil
	}
	return 0, errf(ErrInvalid, "invalid signal %q (use a name like SIGTERM or a number)", s)
}
