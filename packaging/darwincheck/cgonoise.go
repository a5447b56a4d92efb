package main

import (
	"go/ast"
	"go/token"
	"go/types"
)

// cgoNoise recognises the type errors that FakeImportC causes, so they can be
// dropped without hiding anything real.
//
// Under FakeImportC the "C" package is fake: every C.name — a C type, a C
// function's result, a field of C struct type — has types.Typ[Invalid]. go/types
// normally stays silent about invalid operands, but a few checks still fire on
// one, e.g. vz's `(*char)(objc.GetUUID())` yields "cannot convert objc.GetUUID()
// (value with invalid type) to type *char" because GetUUID returns *C.char.
//
// The rule, precisely: a types.Error is dropped iff the expression it points at
// (an expression in types.Info.Types starting at types.Error.Pos — go/types
// reports operand errors at the operand) was recorded with a type that is, or is
// built from (pointer, slice, array, map, chan, signature, struct, tuple),
// types.Typ[Invalid]. go/types records no expression at all for an operand in
// invalid mode, so an undefined name, a wrong method, a wrong argument type or a
// wrong result count in Go code is always reported: those errors point at an
// identifier, or at an operand whose type is valid. The only other source of an
// invalid type in a recorded expression would be an earlier error that made it
// invalid, and that earlier error is itself reported, so dropping its follow-ons
// loses nothing.
type cgoNoise struct {
	atPos map[token.Pos][]types.Type // recorded expression types by start position
}

func newCgoNoise(fset *token.FileSet, files []*ast.File, info *types.Info) *cgoNoise {
	n := &cgoNoise{atPos: make(map[token.Pos][]types.Type)}
	if info == nil {
		return n
	}
	for e, tv := range info.Types {
		if tv.Type != nil {
			n.atPos[e.Pos()] = append(n.atPos[e.Pos()], tv.Type)
		}
	}
	return n
}

// fromCType reports whether te is an error about an operand of invalid (C) type.
func (n *cgoNoise) fromCType(te types.Error) bool {
	for _, t := range n.atPos[te.Pos] {
		if containsInvalid(t, 0) {
			return true
		}
	}
	return false
}

// containsInvalid reports whether t is or is composed of the invalid type. The
// depth bound stops recursion through self-referential named types' structure
// (named types themselves are not looked into: a named type declared in Go
// source is never invalid as a whole without a reported error).
func containsInvalid(t types.Type, depth int) bool {
	if depth > 8 || t == nil {
		return false
	}
	switch t := t.(type) {
	case *types.Basic:
		return t.Kind() == types.Invalid
	case *types.Pointer:
		return containsInvalid(t.Elem(), depth+1)
	case *types.Slice:
		return containsInvalid(t.Elem(), depth+1)
	case *types.Array:
		return containsInvalid(t.Elem(), depth+1)
	case *types.Chan:
		return containsInvalid(t.Elem(), depth+1)
	case *types.Map:
		return containsInvalid(t.Key(), depth+1) || containsInvalid(t.Elem(), depth+1)
	case *types.Tuple:
		for i := 0; i < t.Len(); i++ {
			if containsInvalid(t.At(i).Type(), depth+1) {
				return true
			}
		}
	case *types.Signature:
		return containsInvalid(t.Params(), depth+1) || containsInvalid(t.Results(), depth+1)
	case *types.Struct:
		for i := 0; i < t.NumFields(); i++ {
			if containsInvalid(t.Field(i).Type(), depth+1) {
				return true
			}
		}
	}
	return false
}
