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

{{- define "mesh-pep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mesh-pep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mesh-pep.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "mesh-pep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mesh-pep
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

{{/* FQDN of the gRPC Service, as Istio names it in clusters and extension providers. */}}
{{- define "mesh-pep.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "mesh-pep.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* The sidecar's Envoy cluster for the mesh-pep gRPC port (Istio's outbound cluster naming). */}}
{{- define "mesh-pep.envoyCluster" -}}
{{- printf "outbound|%v||%s" .Values.service.grpcPort (include "mesh-pep.serviceHost" .) -}}
{{- end -}}

{{/*
The meshConfig.extensionProviders entry (Istio's EnvoyExternalAuthorizationGrpcProvider). Used by the
IstioOperator overlay template and printed by NOTES.txt, so both always agree.
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
