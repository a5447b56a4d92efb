// Package model is everything Berth's menu bar and windows show and offer,
// computed in portable Go from the engine's state as the Docker Engine API
// reports it (moby's API types). The AppKit code in ui/ only maps these
// values onto native objects, so what cannot run on Linux stays small.
//
// Nothing here talks to the engine or to AppKit: functions take API values
// and return plain structs (menus, table rows, form errors, texts).
package model
