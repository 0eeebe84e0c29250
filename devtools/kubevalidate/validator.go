package main

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

// validator knows every built-in kind (client-go's scheme: all of k8s.io/api) plus the kinds
// of the CRDs it was given; a document of any other kind is invalid, never skipped.
type validator struct {
	decoder runtime.Decoder
	scheme  *runtime.Scheme
	custom  map[schema.GroupVersionKind]*customKind
}

func newValidator(crdPaths []string) (*validator, error) {
	scheme := runtime.NewScheme()
	if err := clientscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	// EnableStrict: the serializer the API server uses for fieldValidation=Strict.
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	v := &validator{decoder: decoder, scheme: scheme, custom: map[schema.GroupVersionKind]*customKind{}}
	for _, path := range crdPaths {
		if err := v.addCRD(path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return v, nil
}

// validate returns a short name of the document and what is wrong with it (nothing if valid).
func (v *validator) validate(doc []byte) (string, []string) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(doc, &head); err != nil {
		return "?", []string{fmt.Sprintf("not a Kubernetes object: %v", err)}
	}
	what := fmt.Sprintf("%s %s/%s", head.APIVersion, head.Kind, head.Metadata.Name)
	gvk := schema.FromAPIVersionAndKind(head.APIVersion, head.Kind)
	if head.APIVersion == "" || head.Kind == "" {
		return what, []string{"apiVersion and kind are required"}
	}
	if kind, ok := v.custom[gvk]; ok {
		return what, kind.validate(doc)
	}
	if !v.scheme.Recognizes(gvk) {
		return what, []string{fmt.Sprintf("unknown kind %s: not a built-in type and no --crd defines it", gvk)}
	}
	return what, v.validateBuiltin(doc, gvk)
}

func (v *validator) validateBuiltin(doc []byte, gvk schema.GroupVersionKind) []string {
	obj, _, err := v.decoder.Decode(doc, nil, nil)
	if err != nil {
		// A strict decoding error lists every unknown or duplicate field; any other error is a
		// value of the wrong type or format (a string for an integer, a bad quantity...).
		return []string{err.Error()}
	}
	accessor, ok := obj.(metav1.Object)
	if !ok {
		return []string{fmt.Sprintf("%s has no object metadata", gvk)}
	}
	return validateMeta(accessor, gvk)
}
