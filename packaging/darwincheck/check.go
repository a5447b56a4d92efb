package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/tools/go/packages"
)

// Options select what Check loads.
type Options struct {
	Dir      string                    // working directory for `go list` ("" = current)
	GOARCH   string                    // arm64 or amd64
	Patterns []string                  // package patterns, e.g. ./...
	Env      []string                  // extra environment (tests use it for GOFLAGS and the like)
	Own      func(pkgPath string) bool // which packages to report on; nil = the main module's
}

// Result is what one architecture's check found.
type Result struct {
	Errors     []string // "file:line:col: message", sorted, for this module's packages only
	Checked    int      // packages type-checked (dependencies included)
	Own        int      // of which belong to the main module
	Suppressed int      // errors dropped because their operand has a C type (see cgoNoise)
}

// loadMode is deliberately without NeedCompiledGoFiles (which would run cgo)
// and without NeedTypes/NeedSyntax (which would make go/packages type-check with
// export data that only a real darwin build produces). GoFiles then lists the
// cgo files too, as plain Go source.
const loadMode = packages.NeedName | packages.NeedFiles | packages.NeedImports |
	packages.NeedDeps | packages.NeedModule

// Check loads the patterns for darwin/GOARCH and type-checks them.
func Check(opt Options) (*Result, error) {
	env := append(os.Environ(), "GOOS=darwin", "GOARCH="+opt.GOARCH, "CGO_ENABLED=1")
	env = append(env, opt.Env...)
	cfg := &packages.Config{Mode: loadMode, Dir: opt.Dir, Env: env}
	roots, err := packages.Load(cfg, opt.Patterns...)
	if err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		return nil, errors.New("no packages matched")
	}

	// Dependency order: packages.Visit's post-order puts every package after its imports.
	var order []*packages.Package
	packages.Visit(roots, nil, func(p *packages.Package) { order = append(order, p) })

	c := &checker{
		fset:   token.NewFileSet(),
		sizes:  types.SizesFor("gc", opt.GOARCH),
		done:   make(map[string]chan struct{}, len(order)),
		pkgs:   make(map[string]*types.Package, len(order)),
		isOwn:  ownFunc(opt.Own),
		result: &Result{},
	}
	if c.sizes == nil {
		return nil, fmt.Errorf("unknown GOARCH %q", opt.GOARCH)
	}
	for _, p := range order {
		c.done[p.ID] = make(chan struct{})
	}

	// Check packages concurrently; each waits for its imports first. The
	// post-order guarantees that starting goroutines in slice order with a
	// bounded semaphore cannot deadlock: a package's imports were started
	// before it, so they hold or have released their slots already.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, p := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(p *packages.Package) {
			defer wg.Done()
			defer func() { <-sem }()
			defer close(c.done[p.ID])
			for _, imp := range p.Imports {
				<-c.done[imp.ID]
			}
			c.checkPackage(p)
		}(p)
	}
	wg.Wait()
	sort.Strings(c.result.Errors)
	return c.result, nil
}

type checker struct {
	fset  *token.FileSet
	sizes types.Sizes
	isOwn func(*packages.Package) bool

	mu     sync.Mutex
	done   map[string]chan struct{} // closed once the package (by ID) is checked
	pkgs   map[string]*types.Package
	result *Result
}

func (c *checker) lookup(id string) *types.Package {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkgs[id]
}

func (c *checker) checkPackage(p *packages.Package) {
	own := c.isOwn(p)
	if p.PkgPath == "unsafe" {
		c.mu.Lock()
		c.pkgs[p.ID] = types.Unsafe
		c.mu.Unlock()
		return
	}
	var errs []string
	report := func(msg string) {
		if own {
			errs = append(errs, msg)
		}
	}
	// go list errors (bad imports, no buildable files, syntax errors found by go list).
	if own {
		for _, e := range p.Errors {
			if strings.Contains(e.Msg, "build constraints exclude all Go files") {
				continue // a linux-only package: nothing to check for darwin
			}
			report(e.Error())
		}
	}

	files := make([]*ast.File, 0, len(p.GoFiles))
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(c.fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			report(err.Error())
		}
		if f != nil {
			files = append(files, f)
		}
	}

	var info *types.Info
	if own {
		info = &types.Info{
			Types: make(map[ast.Expr]types.TypeAndValue),
			Uses:  make(map[*ast.Ident]types.Object),
		}
	}
	var typeErrs []types.Error
	conf := types.Config{
		FakeImportC: true,
		Sizes:       c.sizes,
		Importer:    importerFunc(func(path string) (*types.Package, error) { return c.importFor(p, path) }),
		Error: func(err error) {
			if te, ok := err.(types.Error); ok && own {
				typeErrs = append(typeErrs, te)
			}
		},
	}
	if p.Module != nil && p.Module.GoVersion != "" {
		conf.GoVersion = "go" + p.Module.GoVersion
	}
	pkg, _ := conf.Check(p.PkgPath, c.fset, files, info)

	suppressed := 0
	if own {
		noise := newCgoNoise(c.fset, files, info)
		for _, te := range typeErrs {
			if noise.fromCType(te) {
				suppressed++
				continue
			}
			report(te.Error())
		}
	}

	c.mu.Lock()
	c.pkgs[p.ID] = pkg
	c.result.Checked++
	if own {
		c.result.Own++
		c.result.Errors = append(c.result.Errors, errs...)
		c.result.Suppressed += suppressed
	}
	c.mu.Unlock()
}

// importFor resolves an import path as seen from package p: p.Imports maps the
// path as written (after vendoring and module resolution) to the package ID.
func (c *checker) importFor(p *packages.Package, path string) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	imp, ok := p.Imports[path]
	if !ok {
		return nil, fmt.Errorf("package %s not in the import graph of %s", path, p.PkgPath)
	}
	if tp := c.lookup(imp.ID); tp != nil {
		return tp, nil
	}
	return nil, fmt.Errorf("package %s could not be type-checked", path)
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

func ownFunc(own func(string) bool) func(*packages.Package) bool {
	if own != nil {
		return func(p *packages.Package) bool { return own(p.PkgPath) }
	}
	return func(p *packages.Package) bool { return p.Module != nil && p.Module.Main }
}
