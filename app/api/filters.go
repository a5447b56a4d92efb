package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseFilters decodes the "filters" query parameter: {"term":{"value":true}}
// (current clients) or {"term":["value"]} (API < 1.22 clients).
func parseFilters(r *http.Request) (map[string][]string, error) {
	raw := r.URL.Query().Get("filters")
	if raw == "" {
		return nil, nil
	}
	var sets map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &sets); err == nil {
		out := make(map[string][]string, len(sets))
		for term, vals := range sets {
			for v, on := range vals {
				if on {
					out[term] = append(out[term], v)
				}
			}
		}
		return out, nil
	}
	var lists map[string][]string
	if err := json.Unmarshal([]byte(raw), &lists); err != nil {
		return nil, badRequest("invalid filters %q: expected a JSON object of term to values", raw)
	}
	return lists, nil
}

// checkFilterTerms rejects terms a list endpoint does not understand, as
// dockerd does ("invalid filter 'x'"), rather than ignoring them.
func checkFilterTerms(f map[string][]string, allowed ...string) error {
	for term := range f {
		ok := false
		for _, a := range allowed {
			if term == a {
				ok = true
				break
			}
		}
		if !ok {
			return badRequest("invalid filter '%s' (supported here: %s)", term, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// boolParam reads a Docker-style boolean query parameter ("1", "true",
// "True", …); absent means false.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true, nil
	case "0", "false", "no", "none":
		return false, nil
	}
	return false, badRequest("invalid value %q for query parameter %s: expected a boolean", v, name)
}

// boolParams reads several boolean query parameters, each into its *bool.
func boolParams(r *http.Request, dst map[string]*bool) error {
	for name, d := range dst {
		v, err := boolParam(r, name)
		if err != nil {
			return err
		}
		*d = v
	}
	return nil
}

// intParam reads an integer query parameter with a default.
func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest("invalid value %q for query parameter %s: expected an integer", v, name)
	}
	return n, nil
}

// timeParam reads a Docker timestamp parameter: seconds since the epoch
// with an optional fraction ("1700000000.123456789"), as the CLI sends after
// converting durations and dates itself. Absent gives the zero time.
func timeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	secStr, fracStr, _ := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil || sec < 0 || sec > math.MaxInt64/int64(time.Second) {
		if t, perr := time.Parse(time.RFC3339Nano, v); perr == nil {
			return t, nil
		}
		return time.Time{}, badRequest("invalid value %q for query parameter %s: expected seconds since the epoch", v, name)
	}
	var nsec int64
	if fracStr != "" {
		if len(fracStr) > 9 {
			fracStr = fracStr[:9]
		}
		fracStr += strings.Repeat("0", 9-len(fracStr))
		nsec, err = strconv.ParseInt(fracStr, 10, 64)
		if err != nil || nsec < 0 {
			return time.Time{}, badRequest("invalid value %q for query parameter %s: expected seconds since the epoch", v, name)
		}
	}
	return time.Unix(sec, nsec), nil
}
