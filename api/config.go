package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/multihome/multihome/config"
)

// secretKey matches the config keys whose values are never served.
var secretKey = regexp.MustCompile(`(?i)(token|secret|password|passphrase|psk|private_key|tsig)`)

// configJSON renders the config in force as JSON with the config file's
// own names and field order, every default filled in and secrets
// replaced by "<redacted>".
func configJSON(c *config.Config) ([]byte, error) {
	if c == nil {
		return []byte("null\n"), nil
	}
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	return nodeJSON(&n)
}

// nodeJSON renders a YAML tree as indented JSON, secrets redacted.
func nodeJSON(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	if err := writeNode(&b, n, "", false); err != nil {
		return nil, err
	}
	// Re-indent; this also proves the output is valid JSON.
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeNode(b *bytes.Buffer, n *yaml.Node, key string, secret bool) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			b.WriteString("null")
			return nil
		}
		return writeNode(b, n.Content[0], key, secret)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k := n.Content[i].Value
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			if err := writeNode(b, n.Content[i+1], k, secret || secretKey.MatchString(k)); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeNode(b, c, key, secret); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.AliasNode:
		return writeNode(b, n.Alias, key, secret)
	case yaml.ScalarNode:
		if secret && n.Tag != "!!null" && n.Value != "" {
			b.WriteString(`"<redacted>"`)
			return nil
		}
		switch n.Tag {
		case "!!null":
			b.WriteString("null")
		case "!!bool":
			v, err := strconv.ParseBool(n.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			b.WriteString(strconv.FormatBool(v))
		case "!!int", "!!float":
			if json.Valid([]byte(n.Value)) {
				b.WriteString(n.Value)
				return nil
			}
			fallthrough // .inf, 0x1f: keep as text
		default:
			s, _ := json.Marshal(n.Value)
			b.Write(s)
		}
	}
	return nil
}
