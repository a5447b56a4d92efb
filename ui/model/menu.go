package model

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
)

// Action is what a menu item or button does; the shell maps each to an
// engine call or a window.
type Action string

const (
	ActStart       Action = "start"
	ActStop        Action = "stop"
	ActRestart     Action = "restart"
	ActPause       Action = "pause"
	ActUnpause     Action = "unpause"
	ActTerminal    Action = "terminal"
	ActLogs        Action = "logs"
	ActCopyIP      Action = "copy-ip"
	ActOpenURL     Action = "open-url"
	ActRemove      Action = "remove"
	ActRun         Action = "run"
	ActImport      Action = "import"
	ActContainers  Action = "containers"
	ActImages      Action = "images"
	ActSettings    Action = "settings"
	ActInstallCLI  Action = "install-cli"
	ActQuit        Action = "quit"
	ActShowDetails Action = "details"
	ActRetryEngine Action = "retry-engine"
	ActNone        Action = ""
)

// Item is one menu entry. A zero Action with a Title is a disabled label.
type Item struct {
	Title     string
	Action    Action
	Target    string // container ID for container actions
	Arg       string // the IP to copy, the URL to open
	Enabled   bool
	Key       string // key equivalent ("q", ",")
	Separator bool
	Confirm   string // when set, ask this question before acting
	State     container.ContainerState
	Submenu   []Item
}

// EngineState is how far the in-process engine is.
type EngineState int

const (
	EngineStarting EngineState = iota
	EngineReady
	EngineFailed
	EngineStopping
)

// MenuInput is what the menu is computed from.
type MenuInput struct {
	Engine       EngineState
	EngineError  string // when Engine == EngineFailed
	Containers   []container.Summary
	Now          time.Time
	CLIInstalled bool // `berth` is on the user's PATH already
}

// Menu is the status item's menu and icon.
type Menu struct {
	Items   []Item
	Icon    StatusIcon
	Running int
	Total   int
}

// StatusIcon says what the menu-bar icon shows: a filled symbol while
// anything runs, an outline otherwise, and a tooltip with the counts.
type StatusIcon struct {
	Symbol  string // SF Symbol name
	Tooltip string
	Active  bool
}

// MaxMenuContainers bounds the per-container submenus; the rest are one
// "… more" item that opens the Containers window.
const MaxMenuContainers = 25

// BuildMenu computes the status menu. It is called on every menu open and
// every engine event, so it must stay cheap (see BenchmarkBuildMenu50).
func BuildMenu(in MenuInput) Menu {
	cs := sortContainers(in.Containers)
	counts := map[container.ContainerState]int{}
	for _, c := range cs {
		counts[c.State]++
	}
	running := counts[container.StateRunning] + counts[container.StateRestarting] + counts[container.StatePaused]
	m := Menu{Running: running, Total: len(cs)}
	m.Icon = StatusIcon{Symbol: "shippingbox", Tooltip: "Berth — " + countsText(counts, len(cs))}
	if running > 0 {
		m.Icon.Symbol, m.Icon.Active = "shippingbox.fill", true
	}

	items := make([]Item, 0, len(cs)+16)
	switch in.Engine {
	case EngineStarting:
		items = append(items, label("Berth is starting…"))
		m.Icon.Tooltip = "Berth — starting"
	case EngineStopping:
		items = append(items, label("Berth is stopping containers…"))
		m.Icon.Tooltip = "Berth — stopping"
	case EngineFailed:
		items = append(items, label("Berth's engine failed to start"))
		if in.EngineError != "" {
			items = append(items, label(truncate(in.EngineError, 80)))
		}
		items = append(items, Item{Title: "Retry", Action: ActRetryEngine, Enabled: true})
		m.Icon.Symbol, m.Icon.Tooltip = "exclamationmark.triangle", "Berth — engine failed: "+truncate(in.EngineError, 120)
	default:
		items = append(items, label(countsText(counts, len(cs))))
	}
	ready := in.Engine == EngineReady

	if ready && len(cs) > 0 {
		items = append(items, Item{Separator: true})
		shown := cs
		if len(shown) > MaxMenuContainers {
			shown = shown[:MaxMenuContainers]
		}
		// One backing array for every submenu: a menu is rebuilt on each
		// open, and per-container allocations dominated its cost.
		arena := make([]Item, 0, len(shown)*submenuCap)
		for _, c := range shown {
			var it Item
			it, arena = containerItemIn(c, in.Now, arena)
			items = append(items, it)
		}
		if n := len(cs) - len(shown); n > 0 {
			items = append(items, Item{Title: fmt.Sprintf("%d more…", n), Action: ActContainers, Enabled: true})
		}
	}

	items = append(items,
		Item{Separator: true},
		Item{Title: "Run Image…", Action: ActRun, Enabled: ready, Key: "n"},
		Item{Title: "Import Image…", Action: ActImport, Enabled: ready, Key: "i"},
		Item{Separator: true},
		Item{Title: "Containers…", Action: ActContainers, Enabled: ready, Key: "1"},
		Item{Title: "Images…", Action: ActImages, Enabled: ready, Key: "2"},
		Item{Title: "Settings…", Action: ActSettings, Enabled: true, Key: ","},
	)
	if !in.CLIInstalled {
		items = append(items, Item{Title: "Install Command-Line Tool…", Action: ActInstallCLI, Enabled: true,
			Confirm: "Install the berth command in /usr/local/bin? macOS will ask for an administrator password if needed."})
	}
	quit := Item{Title: "Quit Berth", Action: ActQuit, Enabled: in.Engine != EngineStopping, Key: "q"}
	if running > 0 {
		quit.Title = fmt.Sprintf("Quit Berth (stops %d %s)", running, plural(running, "container"))
	}
	items = append(items, Item{Separator: true}, quit)
	m.Items = items
	return m
}

// submenuCap is the usual size of a container's submenu.
const submenuCap = 16

// containerItem is one container's submenu.
func containerItem(c container.Summary, now time.Time) Item {
	it, _ := containerItemIn(c, now, nil)
	return it
}

// containerItemIn builds the submenu at the end of arena and returns the
// item and the arena advanced past it.
func containerItemIn(c container.Summary, now time.Time, arena []Item) (Item, []Item) {
	name := ContainerName(c.Names, c.ID)
	ip := SummaryIP(c)
	st := c.State
	running := st == container.StateRunning
	stoppable := running || st == container.StateRestarting || st == container.StatePaused
	startable := st == container.StateCreated || st == container.StateExited || st == container.StateDead
	busy := st == container.StateRemoving

	if cap(arena)-len(arena) < submenuCap+len(c.Ports) {
		arena = make([]Item, 0, submenuCap+len(c.Ports))
	}
	sub := arena[len(arena):len(arena):cap(arena)]
	sub = append(sub, label(stateLine(c)))
	sub = append(sub, label("Image: "+truncate(c.Image, 60)))
	if ip != "" {
		sub = append(sub, label("IP: "+ip))
	}
	if p := FormatPorts(c.Ports); p != "" {
		sub = append(sub, label("Ports: "+truncate(p, 60)))
	}
	sub = append(sub, Item{Separator: true},
		Item{Title: "Start", Action: ActStart, Target: c.ID, Enabled: startable},
		Item{Title: "Stop", Action: ActStop, Target: c.ID, Enabled: stoppable},
		Item{Title: "Restart", Action: ActRestart, Target: c.ID, Enabled: running},
		pauseItem(c.ID, st),
		Item{Separator: true},
		Item{Title: "Open Terminal", Action: ActTerminal, Target: c.ID, Enabled: running},
		Item{Title: "Show Logs", Action: ActLogs, Target: c.ID, Enabled: !busy && st != container.StateCreated},
		Item{Title: "Copy IP", Action: ActCopyIP, Target: c.ID, Arg: ip, Enabled: ip != "" && running},
	)
	ports := c.Ports
	if len(ports) > 1 {
		ports = sortedPorts(ports)
	}
	urlsStart := len(sub)
	for _, p := range ports {
		u, ok := BrowserURL(p)
		if !ok || hasArg(sub[urlsStart:], u) {
			continue
		}
		sub = append(sub, Item{Title: "Open " + strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") + " in Browser",
			Action: ActOpenURL, Target: c.ID, Arg: u, Enabled: running})
	}
	rm := Item{Title: "Remove…", Action: ActRemove, Target: c.ID, Enabled: !busy,
		Confirm: "Remove container " + name + "? Its filesystem and logs are deleted."}
	if stoppable {
		rm.Confirm = "Stop and remove container " + name + "? Its filesystem and logs are deleted."
	}
	sub = append(sub, Item{Separator: true}, Item{Title: "Details…", Action: ActShowDetails, Target: c.ID, Enabled: true}, rm)
	return Item{Title: name, State: st, Target: c.ID, Enabled: true, Submenu: sub}, arena[:len(arena)+len(sub)]
}

// pauseItem freezes a running container's VM or lets a paused one go on:
// one item whose title says which.
func pauseItem(id string, st container.ContainerState) Item {
	if st == container.StatePaused {
		return Item{Title: "Resume", Action: ActUnpause, Target: id, Enabled: true}
	}
	return Item{Title: "Pause", Action: ActPause, Target: id, Enabled: st == container.StateRunning}
}

func hasArg(items []Item, arg string) bool {
	for _, it := range items {
		if it.Arg == arg {
			return true
		}
	}
	return false
}

func stateLine(c container.Summary) string {
	s := stateTitle(c.State)
	if c.Status != "" {
		return s + " — " + c.Status
	}
	return s
}

func stateTitle(s container.ContainerState) string {
	switch s {
	case "":
		return "Unknown"
	default:
		return strings.ToUpper(string(s[:1])) + string(s[1:])
	}
}

// countsText is the header: "2 running · 1 stopped" or "No containers".
func countsText(counts map[container.ContainerState]int, total int) string {
	if total == 0 {
		return "No containers"
	}
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(counts[container.StateRunning]+counts[container.StateRestarting], "running")
	add(counts[container.StatePaused], "paused")
	add(counts[container.StateExited]+counts[container.StateDead], "stopped")
	add(counts[container.StateCreated], "created")
	add(counts[container.StateRemoving], "removing")
	return strings.Join(parts, " · ")
}

// stateRank orders the menu: what runs first, then what stopped, then the rest.
func stateRank(s container.ContainerState) int {
	switch s {
	case container.StateRunning, container.StateRestarting:
		return 0
	case container.StatePaused:
		return 1
	case container.StateExited, container.StateDead:
		return 2
	case container.StateCreated:
		return 3
	default:
		return 4
	}
}

func sortContainers(in []container.Summary) []container.Summary {
	type keyed struct {
		rank int
		name string
		c    container.Summary
	}
	ks := make([]keyed, len(in))
	for i, c := range in {
		ks[i] = keyed{stateRank(c.State), ContainerName(c.Names, c.ID), c}
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].rank != ks[j].rank {
			return ks[i].rank < ks[j].rank
		}
		return ks[i].name < ks[j].name
	})
	out := make([]container.Summary, len(ks))
	for i := range ks {
		out[i] = ks[i].c
	}
	return out
}

func sortedPorts(ps []container.PortSummary) []container.PortSummary {
	out := append([]container.PortSummary(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].PublicPort < out[j].PublicPort })
	return out
}

func label(s string) Item { return Item{Title: s} }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
