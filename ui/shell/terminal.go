package shell

// TerminalCommand is the shell command a terminal runs to get a shell in a
// container: this binary's `exec -it`, against the app's data root, with a
// login shell if the image has bash and sh otherwise.
func TerminalCommand(exe, dataRoot, id string) string {
	return shellQuote(exe) + " --data-root " + shellQuote(dataRoot) + " exec -it " + shellQuote(id) +
		` sh -c 'if command -v bash >/dev/null; then exec bash -l; else exec sh; fi'`
}
