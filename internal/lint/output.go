package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// WriteText writes findings grouped by file, each with its explanation and
// fix, then a count.
func WriteText(w io.Writer, fs []Finding) error {
	var b strings.Builder
	file := ""
	counts := map[Severity]int{}
	for _, f := range fs {
		counts[f.Severity]++
		if f.Source.File != file {
			if file != "" {
				b.WriteByte('\n')
			}
			file = f.Source.File
			b.WriteString(file + "\n")
		}
		loc := "-"
		if f.Source.Line > 0 {
			loc = fmt.Sprint(f.Source.Line)
		}
		obj := ""
		if f.Object != "" {
			obj = f.Object + ": "
		}
		fmt.Fprintf(&b, "  %s:%s %s %s: %s%s\n", file, loc, f.Severity, f.ID, obj, f.Message)
		fmt.Fprintf(&b, "      why: %s\n", f.Explanation)
		fmt.Fprintf(&b, "      fix: %s\n", f.Fix)
	}
	if len(fs) > 0 {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%d error(s), %d warning(s), %d info\n", counts[Error], counts[Warning], counts[Info])
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes {"findings": [...]} with every field of each finding.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Report{Findings: fs})
}

// SARIF 2.1.0, the subset code-scanning tools read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri,omitempty"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	Name                 string       `json:"name"`
	ShortDescription     sarifText    `json:"shortDescription"`
	HelpURI              string       `json:"helpUri,omitempty"`
	DefaultConfiguration sarifDefault `json:"defaultConfiguration"`
}

type sarifDefault struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

func sarifLevel(s Severity) string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

// WriteSARIF writes a SARIF 2.1.0 log with one run: every check as a rule,
// every finding as a result whose location is the file relative to the
// working directory, so that code-scanning tools place it in the
// repository.
func WriteSARIF(w io.Writer, fs []Finding, version string) error {
	driver := sarifDriver{Name: "palisade", InformationURI: "https://github.com/palisade-security/palisade", Version: version}
	index := map[string]int{}
	for i, r := range Rules {
		index[r.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: r.ID, Name: r.Name, ShortDescription: sarifText{r.Short}, HelpURI: r.HelpURI,
			DefaultConfiguration: sarifDefault{sarifLevel(r.Severity)},
		})
	}
	results := []sarifResult{}
	for _, f := range fs {
		loc := sarifPhysical{ArtifactLocation: sarifArtifact{URI: relativeURI(f.Source.File)}}
		if f.Source.Line > 0 {
			loc.Region = &sarifRegion{StartLine: f.Source.Line}
		}
		text := f.Message
		if f.Object != "" {
			text = f.Object + ": " + text
		}
		results = append(results, sarifResult{
			RuleID: f.ID, RuleIndex: index[f.ID], Level: sarifLevel(f.Severity),
			Message:    sarifText{text + " Fix: " + f.Fix},
			Locations:  []sarifLocation{{PhysicalLocation: loc}},
			Properties: map[string]any{"explanation": f.Explanation, "fix": f.Fix, "object": f.Object},
		})
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// relativeURI makes a path relative to the working directory, with forward
// slashes, as SARIF's artifactLocation.uri wants for files in the
// repository. Paths outside it, and <stdin>, are kept as they are.
func relativeURI(path string) string {
	if path == "" || strings.HasPrefix(path, "<") {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.ToSlash(path)
	}
	wd, err := os.Getwd()
	if err != nil {
		return filepath.ToSlash(path)
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(path)
	}
	return filepath.ToSlash(rel)
}
