package main

import (
	"context"
	"fmt"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// customKind is one served version of a CRD: the checks the API server runs on a custom
// resource of that version, built from the CRD's openAPIV3Schema.
type customKind struct {
	structural *structuralschema.Structural
	schema     validation.SchemaValidator
	cel        *cel.Validator
}

func (v *validator) addCRD(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	obj, _, err := v.decoder.Decode(data, nil, nil)
	if err != nil {
		return fmt.Errorf("not a valid CustomResourceDefinition: %w", err)
	}
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return fmt.Errorf("not a CustomResourceDefinition but a %T", obj)
	}
	for _, version := range crd.Spec.Versions {
		if !version.Served || version.Schema == nil || version.Schema.OpenAPIV3Schema == nil {
			continue
		}
		kind, err := newCustomKind(version.Schema.OpenAPIV3Schema)
		if err != nil {
			return fmt.Errorf("version %s: %w", version.Name, err)
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
		v.custom[gvk] = kind
	}
	return nil
}

func newCustomKind(v1schema *apiextensionsv1.JSONSchemaProps) (*customKind, error) {
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1schema, internal, nil); err != nil {
		return nil, err
	}
	structural, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("schema is not structural: %w", err)
	}
	schemaValidator, _, err := validation.NewSchemaValidator(internal)
	if err != nil {
		return nil, err
	}
	return &customKind{
		structural: structural,
		schema:     schemaValidator,
		cel:        cel.NewValidator(structural, true, celconfig.PerCallLimit),
	}, nil
}

// validate runs, in the server's order: unknown fields (what pruning would drop; an error under
// fieldValidation=Strict), metadata, the OpenAPI schema, list types, then the CRD's CEL rules.
func (k *customKind) validate(doc []byte) []string {
	// Duplicate keys are errors; numbers become int64 or float64 as in the server's unstructured
	// decoding (CEL rules compare integers as int64).
	jsonDoc, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []string{err.Error()}
	}
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(jsonDoc, &obj); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	clone := runtime.DeepCopyJSON(obj)
	unknown := pruning.PruneWithOptions(clone, k.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, path := range unknown {
		problems = append(problems, fmt.Sprintf("unknown field %q", path))
	}
	problems = append(problems, validateCustomMeta(obj)...)
	errs := validation.ValidateCustomResource(nil, obj, k.schema)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, k.structural, obj)...)
	if k.cel != nil {
		celErrs, _ := k.cel.Validate(context.Background(), nil, k.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return append(problems, messages(errs)...)
}

// validateCustomMeta decodes a custom resource's metadata strictly into ObjectMeta, as the server
// does, and applies the metadata rules.
func validateCustomMeta(obj map[string]interface{}) []string {
	raw, err := sigsyaml.Marshal(obj["metadata"])
	if err != nil {
		return []string{err.Error()}
	}
	jsonRaw, err := sigsyaml.YAMLToJSON(raw)
	if err != nil {
		return []string{err.Error()}
	}
	var meta metav1.ObjectMeta
	strictErrs, err := sigsjson.UnmarshalStrict(jsonRaw, &meta)
	if err != nil {
		return []string{fmt.Sprintf("metadata: %v", err)}
	}
	var problems []string
	for _, e := range strictErrs {
		problems = append(problems, fmt.Sprintf("metadata: %v", e))
	}
	return append(problems, validateMeta(&meta, schema.GroupVersionKind{})...)
}
