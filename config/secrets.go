package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// SecretFile is one file a config names that holds a secret: a field
// whose name ends in "_file" (api.token_file, dns.keys[].secret_file,
// bgp.neighbors[].password_file, bond.key_file, ha.auth_pass_file...).
type SecretFile struct {
	Field string // e.g. "api.token_file"
	Path  string // resolved: relative paths are taken from the config's directory
}

// resolveFiles makes every relative "*_file" path (and dns.zones[].file)
// relative to the config file's directory, not the working directory,
// and records the secret files. In-memory input (no File) is left as is.
func resolveFiles(c *Config) {
	dir := ""
	if c.File != "" {
		dir = filepath.Dir(c.File)
	}
	walkFiles(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value, secret bool) {
		p := v.String()
		if p == "" {
			return
		}
		if dir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
			v.SetString(p)
		}
		if secret {
			c.secrets = append(c.secrets, SecretFile{Field: path, Path: p})
		}
	})
}

// walkFiles calls fn for every settable string field of v named "file"
// or "*_file", with its field path.
func walkFiles(v reflect.Value, path string, fn func(path string, v reflect.Value, secret bool)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkFiles(v.Elem(), path, fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkFiles(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			fv := v.Field(i)
			p := join(path, name)
			if fv.Kind() == reflect.String {
				if name == "file" || strings.HasSuffix(name, "_file") {
					fn(p, fv, name != "file")
				}
				continue
			}
			walkFiles(fv, p, fn)
		}
	}
}

// SecretFiles returns the secret files the config names.
func (c *Config) SecretFiles() []SecretFile { return c.secrets }

// PermissionProblems returns a warning for the config file and for every
// secret file that group or others may read (or that cannot be checked):
// the config may hold tokens, keys and passwords inline. `check-config
// --strict` and `run --strict` refuse to go on with any.
func (c *Config) PermissionProblems() Errors {
	var out Errors
	check := func(field, path, what string) {
		st, err := os.Stat(path)
		if err != nil {
			return // a missing secret file is the section's error
		}
		if m := st.Mode().Perm(); m&0o077 != 0 {
			p := c.Position(field)
			out = append(out, &Error{File: c.File, Line: p.Line, Column: p.Column, Field: field,
				Msg: fmt.Sprintf("%s %s is accessible to group or others (mode %04o): chmod 600 it (root-owned)", what, path, m)})
		}
	}
	if c.File != "" {
		check("", c.File, "the config file")
	}
	for _, s := range c.secrets {
		check(s.Field, s.Path, "secret file")
	}
	return out
}
