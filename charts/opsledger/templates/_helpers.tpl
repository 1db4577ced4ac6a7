{{/* Names, labels and the small decisions several templates share. */}}

{{- define "opsledger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "opsledger.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "opsledger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opsledger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "opsledger.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "opsledger.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: opsledger
{{- end }}

{{- define "opsledger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "opsledger.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "opsledger.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Kopf peering is on when more than one replica runs. */}}
{{- define "opsledger.peering" -}}
{{- if gt (int .Values.replicas) 1 }}{{ default (include "opsledger.fullname" .) .Values.peering.name }}{{ end }}
{{- end }}

{{- define "opsledger.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "opsledger.fullname" .) }}
{{- end }}

{{- define "opsledger.webhookCertName" -}}
{{- printf "%s-webhook" (include "opsledger.fullname" .) }}
{{- end }}

{{- define "opsledger.cmdbSecretName" -}}
{{- default (printf "%s-cmdb" (include "opsledger.fullname" .)) .Values.cmdb.auth.existingSecret }}
{{- end }}

{{- define "opsledger.forgeSecretName" -}}
{{- default (printf "%s-forge" (include "opsledger.fullname" .)) .Values.forge.existingSecret }}
{{- end }}

{{- define "opsledger.receiverSecretName" -}}
{{- default (printf "%s-receiver" (include "opsledger.fullname" .)) .Values.receiver.existingSecret }}
{{- end }}

{{/* The kinds a ConfigurationItem can follow: the operator watches all of them, always
     (operator/opsledger/handlers/configitem.py SOURCE_KINDS). */}}
{{- define "opsledger.sourceRules" -}}
- apiGroups: [""]
  resources: [services, nodes, namespaces, persistentvolumeclaims, persistentvolumes]
  verbs: [get, list, watch]
# which nodes a followed workload's pods run on (its runsOn relationships): read, never watched
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch]
{{- end }}

{{- define "opsledger.executionRules" -}}
{{- range .Values.rbac.execution.resources }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ toJson .resources }}
  verbs: {{ toJson $.Values.rbac.execution.verbs }}
{{- end }}
{{- end }}

{{- /* Requests from the control plane are never sent to the guard (as the operator's own
       configuration, servers/admission.py NOT_THE_CONTROL_PLANE). */}}
{{- define "opsledger.notTheControlPlane" -}}
name: not-the-control-plane
expression: "!(request.userInfo.username in ['system:apiserver', 'system:kube-controller-manager', 'system:kube-scheduler'] || request.userInfo.username.startsWith('system:serviceaccount:kube-system:') || request.userInfo.username.startsWith('system:node:'))"
{{- end }}

{{- /* Evictions by whoever may cordon nodes are never sent to the guard (servers/admission.py
       NOT_A_DRAIN). */}}
{{- define "opsledger.notADrain" -}}
name: not-a-node-drain
expression: "!has(request.subResource) || request.subResource != 'eviction' || !authorizer.group('').resource('nodes').check('update').allowed()"
{{- end }}

{{- define "opsledger.guardLabelRules" -}}
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets, replicasets]
  verbs: [patch]
- apiGroups: [batch]
  resources: [cronjobs, jobs]
  verbs: [patch]
{{- end }}
