package container

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// Default names are adjective_surname, like Docker's, from Berth's own
// harbour-flavoured lists (surnames of navigators and ocean scientists).
var adjectives = strings.Fields(`
able agile amber ample balmy bold brave breezy bright brisk calm candid
careful cheerful clever cosy crisp curious daring deft eager earnest easy
fair fearless fleet fond frank gentle glad golden handy hardy hearty
honest jolly keen kind lively loyal lucid merry mellow mighty modest
nimble noble patient placid plucky polite proud quick quiet rapid ready
salty serene sharp shiny sleek snug sober spry steady stout sturdy sunny
swift tidy tranquil trusty upbeat valiant vivid warm wary wise witty zesty`)

var surnames = strings.Fields(`
amundsen baffin banks barents bering bligh bougainville byrd cabot cabral
carson cartier champlain columbus cook cousteau dampier dias drake earle
ericsson flinders franklin frobisher gama hartog henson heyerdahl hudson
humboldt janszoon kupe laperouse magellan maury nansen nordenskiold
orellana peary piccard polo raleigh ross scott shackleton slocum tasman
tharp torres vancouver vespucci walsh weddell wilkes zheng`)

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err)
	}
	return int(v.Int64())
}

// randomName picks a free adjective_surname (m.mu held).
func (m *Manager) randomName() string {
	for i := 0; ; i++ {
		n := adjectives[randInt(len(adjectives))] + "_" + surnames[randInt(len(surnames))]
		if i > 10 {
			n += fmt.Sprint(randInt(100))
		}
		if _, taken := m.names[n]; !taken {
			return n
		}
	}
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func checkName(name string) (string, error) {
	name = strings.TrimPrefix(name, "/")
	if !validName.MatchString(name) || len(name) > 128 {
		return "", errf(ErrInvalid, "invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return name, nil
}

// newID is 64 hex digits, never all-numeric in its short form (so a short
// ID cannot be mistaken for a number).
func newID() string {
	for {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		id := hex.EncodeToString(b[:])
		if strings.ContainsAny(id[:12], "abcdef") {
			return id
		}
	}
}
