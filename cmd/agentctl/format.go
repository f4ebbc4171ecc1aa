package main

// Output of ls, inspect, info and version, chosen with --format as in
// Docker: "table" (columns), "json" (one JSON object per line), or a Go
// text/template executed once per item, with Docker's template functions
// (json, join, split, lower, upper, title, truncate).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"

	"github.com/urfave/cli/v2"
)

const (
	formatTable = "table"
	formatJSON  = "json"
)

func formatFlag(what string) cli.Flag {
	return &cli.StringFlag{
		Name:  "format",
		Usage: "format " + what + ": table, json, or a Go template such as '{{.Name}}'",
	}
}

// columns is how a list of T shows as a table.
type columns[T any] struct {
	header []string
	row    func(T) []string
}

// printList writes items in format; "" means table.
func printList[T any](w io.Writer, format string, items []T, cols columns[T]) error {
	switch format {
	case "", formatTable:
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, strings.Join(cols.header, "\t"))
		for _, item := range items {
			fmt.Fprintln(tw, strings.Join(cols.row(item), "\t"))
		}
		return tw.Flush()
	case formatJSON:
		for _, item := range items {
			if err := writeJSON(w, item, false); err != nil {
				return err
			}
		}
		return nil
	default:
		return printTemplate(w, format, items)
	}
}

// printInspect writes inspected items in format; "" means an indented JSON
// array, as docker inspect prints by default.
func printInspect[T any](w io.Writer, format string, items []T, cols columns[T]) error {
	if format != "" {
		return printList(w, format, items, cols)
	}
	if items == nil {
		items = []T{}
	}
	return writeJSON(w, items, true)
}

// printTemplate executes the template format for each item, each on its
// line.
func printTemplate[T any](w io.Writer, format string, items []T) error {
	tmpl, err := parseTemplate(format)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, item := range items {
		if err := executeTemplate(&buf, tmpl, item); err != nil {
			return fmt.Errorf("executing --format template: %s", trimTemplateError(err))
		}
		buf.WriteByte('\n')
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func parseTemplate(format string) (*template.Template, error) {
	tmpl, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("invalid --format template: %s", trimTemplateError(err))
	}
	return tmpl, nil
}

// formatOf returns the command's --format, a template checked to parse
// before anything is asked of the agent.
func formatOf(c *cli.Context) (string, error) {
	format := c.String("format")
	switch format {
	case "", formatTable, formatJSON:
		return format, nil
	}
	_, err := parseTemplate(format)
	return format, err
}

// executeTemplate runs tmpl on item, and if that fails, on the item's JSON
// form, so that both Go field names ({{.ID}}) and JSON ones ({{.Id}}) work,
// as with docker inspect.
func executeTemplate(w *bytes.Buffer, tmpl *template.Template, item any) error {
	mark := w.Len()
	err := tmpl.Execute(w, item)
	if err == nil {
		return nil
	}
	w.Truncate(mark)
	var generic any
	data, jerr := json.Marshal(item)
	if jerr == nil {
		jerr = json.Unmarshal(data, &generic)
	}
	if jerr != nil || tmpl.Execute(w, generic) != nil {
		w.Truncate(mark)
		return err
	}
	return nil
}

func trimTemplateError(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}

// writeJSON writes v as one line of JSON, or indented.
func writeJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "    ")
	}
	return enc.Encode(v)
}

var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		if err := writeJSON(&buf, v, false); err != nil {
			return "", err
		}
		return strings.TrimSuffix(buf.String(), "\n"), nil
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		r := []rune(s)
		if len(r) > 0 {
			r[0] = unicode.ToUpper(r[0])
		}
		return string(r)
	},
	"truncate": func(s string, n int) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n])
		}
		return s
	},
}

// shortID is an id as tables show it: its first 12 characters.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
