{{/* Names, labels and the pieces several templates share (one definition each). */}}

{{- define "mesh-pep.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mesh-pep.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "mesh-pep.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "mesh-pep.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels never change after install (a Deployment's selector is immutable). */}}
{{- define "mesh-pep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mesh-pep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Kubernetes' recommended labels; component "pep" marks the server's own objects. */}}
{{- define "mesh-pep.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "mesh-pep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mesh-pep
app.kubernetes.io/component: pep
{{- end -}}

{{/* The same labels for the Istio and admission objects that wire workloads to the PEP. */}}
{{- define "mesh-pep.wiringLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "mesh-pep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mesh-pep
app.kubernetes.io/component: mesh-wiring
{{- end -}}

{{- define "mesh-pep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "mesh-pep.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The policy file as mounted into the pod; also hashed into the pod annotation that rolls pods. */}}
{{- define "mesh-pep.policy" -}}
security_mesh:
{{- toYaml .Values.policy.securityMesh | nindent 2 }}
{{- end -}}

{{- define "mesh-pep.policyConfigMap" -}}
{{- .Values.policy.existingConfigMap | default (printf "%s-policy" (include "mesh-pep.fullname" .)) -}}
{{- end -}}

{{/* A name of the form <fullname>-<suffix>, within the 63 characters Kubernetes allows. */}}
{{- define "mesh-pep.childName" -}}
{{- printf "%s-%s" (include "mesh-pep.fullname" .root) .suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* FQDN of the gRPC Service, as Istio names it in clusters and extension providers. */}}
{{- define "mesh-pep.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "mesh-pep.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* The sidecar's Envoy cluster for the mesh-pep gRPC port (Istio's outbound cluster naming). */}}
{{- define "mesh-pep.envoyCluster" -}}
{{- printf "outbound|%v||%s" .Values.service.grpcPort (include "mesh-pep.serviceHost" .) -}}
{{- end -}}

{{/*
The Envoy gRPC target of both filters. `authority` is the service host: without it Envoy sends the
cluster name as :authority, and `outbound|9001||host` is not a valid authority (envoy#3297, istio#16676),
so mesh-pep's gRPC server would refuse every call. Istio's own ext_authz config sets it the same way.
*/}}
{{- define "mesh-pep.grpcService" -}}
envoy_grpc:
  cluster_name: {{ include "mesh-pep.envoyCluster" . | quote }}
  authority: {{ include "mesh-pep.serviceHost" . | quote }}
timeout: {{ .Values.istio.authzTimeout }}
{{- end -}}

{{/* ext_proc's ExternalProcessor config, the same inbound and outbound. */}}
{{- define "mesh-pep.extProcConfig" -}}
"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
failure_mode_allow: false
grpc_service:
  envoy_grpc:
    cluster_name: {{ include "mesh-pep.envoyCluster" . | quote }}
    authority: {{ include "mesh-pep.serviceHost" . | quote }}
processing_mode:
  request_header_mode: SEND
  response_header_mode: SEND
  request_body_mode: {{ .Values.istio.extProc.requestBodyMode }}
  response_body_mode: {{ .Values.istio.extProc.responseBodyMode }}
  request_trailer_mode: SKIP
  response_trailer_mode: SKIP
message_timeout: {{ .Values.istio.extProc.messageTimeout }}
metadata_options:
  forwarding_namespaces:
    untyped:
      - envoy.filters.http.ext_authz
mutation_rules:
  allow_envoy: true
{{- end -}}

{{/*
ext_authz context_extensions for a list of domains: one names the domain; several let Check pick among
those only (by their `match`), so a caller cannot steer the request into another workload's domain.
Call with (dict "domains" <list> "principal" <spiffe id or "">).
*/}}
{{- define "mesh-pep.contextExtensions" -}}
{{- if eq (len .domains) 1 }}
domain: {{ first .domains | quote }}
{{- else }}
domains: {{ join "," .domains | quote }}
{{- end }}
{{- if .principal }}
source_principal: {{ .principal | quote }}
{{- end }}
{{- end -}}

{{/*
The meshConfig.extensionProviders entry (Istio's EnvoyExternalAuthorizationGrpcProvider), printed by
NOTES.txt; files/istio-extension-provider.yaml is the same for the default values (a test compares them).
*/}}
{{- define "mesh-pep.extensionProvider" -}}
- name: {{ .Values.istio.providerName }}
  envoyExtAuthzGrpc:
    service: {{ include "mesh-pep.serviceHost" . }}
    port: {{ .Values.service.grpcPort }}
    timeout: {{ .Values.istio.authzTimeout }}
    failOpen: false
    statusOnError: {{ .Values.istio.statusOnError | quote }}
{{- end -}}

{{/*
Refuses combinations that would fail open in a cluster. Called by every Istio template, so `helm template`
and `helm install` stop with the reason before anything is applied.
*/}}
{{- define "mesh-pep.istioGuards" -}}
{{- $ns := .Values.istio.agents.namespace -}}
{{- $ambient := eq .Values.istio.agents.dataplaneMode "ambient" -}}
{{- /* At install time, ask the cluster too (lookup returns nothing under `helm template`). */ -}}
{{- $live := lookup "v1" "Namespace" "" $ns -}}
{{- if $live -}}
{{- if eq (dig "metadata" "labels" "istio.io/dataplane-mode" "" $live) "ambient" -}}
{{- $ambient = true -}}
{{- end -}}
{{- end -}}
{{- if and $ambient (ne .Values.istio.mode "ambient-check-only") -}}
{{- fail (printf "namespace %s runs Istio ambient: waypoints ignore EnvoyFilter, so ext_proc (payload protection) would silently not run. Set istio.mode=ambient-check-only to accept Check-only enforcement (see the README's Istio section), or move the agents to sidecar mode." $ns) -}}
{{- end -}}
{{- if and (eq .Values.istio.mode "ambient-check-only") (not $ambient) -}}
{{- fail (printf "istio.mode=ambient-check-only needs istio.agents.dataplaneMode=ambient: a sidecar namespace would lose payload protection for nothing") -}}
{{- end -}}
{{- if and (eq .Values.istio.mode "ambient-check-only") .Values.istio.outbound.enabled -}}
{{- fail "istio.outbound needs sidecars on the callers; it cannot run with istio.mode=ambient-check-only" -}}
{{- end -}}
{{- if not .Values.policy.existingConfigMap -}}
{{- $known := list -}}
{{- range .Values.policy.securityMesh.domains -}}
{{- $known = append $known .name -}}
{{- end -}}
{{- range .Values.istio.agents.workloads -}}
{{- $w := . -}}
{{- range .domains -}}
{{- if not (has . $known) -}}
{{- fail (printf "istio.agents.workloads %s names domain %s, which policy.securityMesh.domains does not define" $w.name .) -}}
{{- end -}}
{{- end -}}
{{- if gt (len .domains) 1 -}}
{{- range $.Values.policy.securityMesh.domains -}}
{{- if and (has .name $w.domains) (not (dig "match" "path_prefixes" list .)) -}}
{{- fail (printf "workload %s serves several domains, so domain %s needs match.path_prefixes to tell its requests apart" $w.name .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range .Values.istio.outbound.destinations -}}
{{- $d := . -}}
{{- range .domains -}}
{{- if not (has . $known) -}}
{{- fail (printf "istio.outbound.destinations %s names domain %s, which policy.securityMesh.domains does not define" $d.host .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Envoy matcher predicates for exempt paths, as Istio's AuthorizationPolicy reads the same strings. */}}
{{- define "mesh-pep.exemptPredicate" -}}
{{- if hasSuffix "*" . -}}
prefix: {{ trimSuffix "*" . | quote }}
{{- else -}}
safe_regex:
  google_re2: {}
  regex: {{ printf "^%s([?].*)?$" (regexQuoteMeta .) | quote }}
{{- end -}}
{{- end -}}

{{/* envoy.type.v3.StatusCode enum name of an HTTP status (the ones statusOnError may sensibly take). */}}
{{- define "mesh-pep.httpStatusName" -}}
{{- $names := dict "403" "Forbidden" "500" "InternalServerError" "502" "BadGateway" "503" "ServiceUnavailable" "504" "GatewayTimeout" -}}
{{- $name := get $names (toString .) -}}
{{- if not $name -}}
{{- fail (printf "istio.statusOnError %s: the outbound ext_authz takes 403, 500, 502, 503 or 504" (toString .)) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* Namespaces whose proxies call Check and Process: the agents' and every outbound caller's, once each. */}}
{{- define "mesh-pep.enforcingNamespaces" -}}
{{- $all := concat (list .Values.istio.agents.namespace) .Values.istio.gatewayNamespaces -}}
{{- if .Values.istio.outbound.enabled -}}
{{- range .Values.istio.outbound.callers -}}
{{- $all = append $all .namespace -}}
{{- end -}}
{{- end -}}
{{- toYaml (uniq $all) -}}
{{- end -}}
