// Command kubevalidate checks Kubernetes manifests (a `helm template` output, say) offline and
// strictly, the way a kube-apiserver with `fieldValidation=Strict` would, without a cluster.
//
// Why this way: the official Kubernetes types are the k8s.io/api Go structs, and the API server
// decodes built-in objects with apimachinery's strict serializer (unknown, duplicate and
// wrongly-cased fields are errors; a value of the wrong JSON type does not decode). Using that
// same serializer over the same structs is as close as one gets offline to what the server
// accepts, and it needs nothing but Go modules. For custom resources (ServiceMonitor,
// ScaledObject, ...) the server's rules are the CRD's published OpenAPI v3 schema: the CRD YAML
// files given with --crd are fed to the apiextensions-apiserver packages the server runs for
// custom resources (pruning to find unknown fields, the OpenAPI schema validator for types,
// enums and required fields, list-type checks, and the CRD's CEL rules).
//
// What it does not do: the server's semantic validation of built-in types (k8s.io/kubernetes
// pkg/apis/*/validation, not importable as a library): a container without a name decodes
// fine here. Object names are checked with apimachinery's metadata validation.
//
// Usage: kubevalidate [--crd FILE]... [FILE|-]...   (exit 0 all valid, 1 some invalid, 2 usage)
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
)

type crdFiles []string

func (c *crdFiles) String() string     { return strings.Join(*c, ",") }
func (c *crdFiles) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout))
}

func run(args []string, stdin io.Reader, out io.Writer) int {
	flags := flag.NewFlagSet("kubevalidate", flag.ContinueOnError)
	var crds crdFiles
	flags.Var(&crds, "crd", "a CustomResourceDefinition YAML file whose kinds may appear (repeatable)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	v, err := newValidator(crds)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return 2
	}
	inputs := flags.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	invalid := 0
	for _, name := range inputs {
		n, err := validateStream(v, name, stdin, out)
		if err != nil {
			fmt.Fprintf(out, "error: %s: %v\n", name, err)
			return 2
		}
		invalid += n
	}
	if invalid > 0 {
		return 1
	}
	return 0
}

// validateStream validates every YAML document of one input and returns how many are invalid.
func validateStream(v *validator, name string, stdin io.Reader, out io.Writer) (int, error) {
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		in = f
	}
	reader := yaml.NewYAMLReader(bufio.NewReader(in))
	invalid, index := 0, 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return invalid, nil
		}
		if err != nil {
			return invalid, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue // `helm template` separates templates that render to nothing
		}
		index++
		what, problems := v.validate(doc)
		if len(problems) == 0 {
			fmt.Fprintf(out, "ok %s: document %d: %s\n", name, index, what)
			continue
		}
		invalid++
		for _, p := range problems {
			fmt.Fprintf(out, "invalid %s: document %d: %s: %s\n", name, index, what, p)
		}
	}
}

func stripComments(doc []byte) []byte {
	var kept [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			kept = append(kept, line)
		}
	}
	return bytes.Join(kept, []byte("\n"))
}
