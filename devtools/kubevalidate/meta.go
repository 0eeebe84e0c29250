package main

import (
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateMeta applies apimachinery's object-metadata rules (name format, label and annotation
// syntax) with the name rule the server uses for the kind: a Service's name must be a DNS-1035
// label (it becomes a DNS name), most other names a DNS-1123 subdomain.
func validateMeta(meta metav1.Object, gvk schema.GroupVersionKind) []string {
	nameRule := apimachineryvalidation.NameIsDNSSubdomain
	if gvk.Group == "" && gvk.Kind == "Service" {
		nameRule = apimachineryvalidation.NameIsDNS1035Label
	}
	// Namespaces are left to `helm install --namespace`: a chart's objects carry none.
	errs := apimachineryvalidation.ValidateObjectMetaAccessor(meta, false, nameRule, field.NewPath("metadata"))
	return messages(errs)
}

func messages(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}
