package main

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A minimal XML property list reader and writer: enough to read and check
// Info.plist and entitlements.plist and to write Info.plist back with the
// build's version. Values: map[string]any (dict), []any (array), string,
// bool, int64 (integer), float64 (real), time.Time (date), []byte (data).

// Dict is a plist dictionary that remembers its key order, so writing it
// back keeps the file as humans laid it out.
type Dict struct {
	Keys   []string
	Values map[string]any
}

func (d *Dict) Get(k string) (any, bool) { v, ok := d.Values[k]; return v, ok }

func (d *Dict) Set(k string, v any) {
	if _, ok := d.Values[k]; !ok {
		d.Keys = append(d.Keys, k)
	}
	d.Values[k] = v
}

// ParsePlist reads an XML plist whose top level is a dict.
func ParsePlist(r io.Reader) (*Dict, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("plist: root element is <%s>, want <plist>", se.Name.Local)
			}
			v, err := parseValue(dec)
			if err != nil {
				return nil, err
			}
			d, ok := v.(*Dict)
			if !ok {
				return nil, errors.New("plist: top level is not a <dict>")
			}
			return d, nil
		}
	}
}

// nextStart returns the next start element, or nil at an end element.
func nextStart(dec *xml.Decoder) (*xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("plist: stray text %q", strings.TrimSpace(string(t)))
			}
		}
	}
}

func parseValue(dec *xml.Decoder) (any, error) {
	se, err := nextStart(dec)
	if err != nil {
		return nil, err
	}
	if se == nil {
		return nil, errors.New("plist: missing value")
	}
	return parseElement(dec, *se)
}

func parseElement(dec *xml.Decoder, se xml.StartElement) (any, error) {
	text := func() (string, error) {
		var s string
		if err := dec.DecodeElement(&s, &se); err != nil {
			return "", fmt.Errorf("plist: <%s>: %w", se.Name.Local, err)
		}
		return s, nil
	}
	switch se.Name.Local {
	case "dict":
		d := &Dict{Values: map[string]any{}}
		for {
			ke, err := nextStart(dec)
			if err != nil {
				return nil, err
			}
			if ke == nil {
				return d, nil
			}
			if ke.Name.Local != "key" {
				return nil, fmt.Errorf("plist: <%s> where a <key> belongs in a dict", ke.Name.Local)
			}
			var k string
			if err := dec.DecodeElement(&k, ke); err != nil {
				return nil, fmt.Errorf("plist: <key>: %w", err)
			}
			if _, dup := d.Values[k]; dup {
				return nil, fmt.Errorf("plist: key %q appears twice", k)
			}
			v, err := parseValue(dec)
			if err != nil {
				return nil, fmt.Errorf("%w (value of key %q)", err, k)
			}
			d.Set(k, v)
		}
	case "array":
		arr := []any{}
		for {
			e, err := nextStart(dec)
			if err != nil {
				return nil, err
			}
			if e == nil {
				return arr, nil
			}
			v, err := parseElement(dec, *e)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
	case "string":
		return text()
	case "true", "false":
		if err := dec.Skip(); err != nil {
			return nil, err
		}
		return se.Name.Local == "true", nil
	case "integer":
		s, err := text()
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("plist: <integer>%s</integer>: %w", s, err)
		}
		return n, nil
	case "real":
		s, err := text()
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("plist: <real>%s</real>: %w", s, err)
		}
		return f, nil
	case "date":
		s, err := text()
		if err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("plist: <date>%s</date>: %w", s, err)
		}
		return t, nil
	case "data":
		s, err := text()
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, fmt.Errorf("plist: <data>: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("plist: unknown element <%s>", se.Name.Local)
}

// WritePlist writes d as an XML plist (tabs, Apple's header).
func WritePlist(w io.Writer, d *Dict) error {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	if err := writeValue(&b, d, 0); err != nil {
		return err
	}
	b.WriteString("</plist>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func writeValue(b *strings.Builder, v any, depth int) error {
	ind := strings.Repeat("\t", depth)
	switch v := v.(type) {
	case *Dict:
		b.WriteString(ind + "<dict>\n")
		keys := v.Keys
		if len(keys) != len(v.Values) { // built by hand: sort for determinism
			keys = keys[:0:0]
			for k := range v.Values {
				keys = append(keys, k)
			}
			sort.Strings(keys)
		}
		for _, k := range keys {
			b.WriteString(ind + "\t<key>" + esc(k) + "</key>\n")
			if err := writeValue(b, v.Values[k], depth+1); err != nil {
				return err
			}
		}
		b.WriteString(ind + "</dict>\n")
	case []any:
		b.WriteString(ind + "<array>\n")
		for _, e := range v {
			if err := writeValue(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteString(ind + "</array>\n")
	case string:
		b.WriteString(ind + "<string>" + esc(v) + "</string>\n")
	case bool:
		if v {
			b.WriteString(ind + "<true/>\n")
		} else {
			b.WriteString(ind + "<false/>\n")
		}
	case int64:
		b.WriteString(ind + "<integer>" + strconv.FormatInt(v, 10) + "</integer>\n")
	case float64:
		b.WriteString(ind + "<real>" + strconv.FormatFloat(v, 'g', -1, 64) + "</real>\n")
	case time.Time:
		b.WriteString(ind + "<date>" + v.UTC().Format(time.RFC3339) + "</date>\n")
	case []byte:
		b.WriteString(ind + "<data>" + base64.StdEncoding.EncodeToString(v) + "</data>\n")
	default:
		return fmt.Errorf("plist: cannot encode %T", v)
	}
	return nil
}
