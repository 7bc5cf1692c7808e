import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule';
import { EnvoyFilter } from '@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter';
import { AuthorizationPolicy } from '@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy';
import { PeerAuthentication } from '@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication';
import { Telemetry } from '@kubernetes-models/istio/telemetry.istio.io/v1/Telemetry';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { Json } from './repo.js';

/**
 * Kubernetes and Istio object validation with the schemas shipped in `kubernetes-models` and
 * `@kubernetes-models/istio`, made strict about unknown fields.
 *
 * Those schemas come from OpenAPI documents without `additionalProperties: false`, so on their own they
 * accept `imagee:` or a misplaced `sepc:`. The API server would prune or reject such a field, silently
 * changing what the manifest means. The validators are generated code that reads each property its schema
 * knows (`data.image`, `data.ports`, ...), so we hand them the object behind a Proxy that records every
 * property read: in an object the validator inspected, an own key it never read is unknown to the schema.
 * An object it did not inspect at all is free-form in the schema (e.g. an EnvoyFilter patch `value`,
 * which the Envoy proto checker covers instead).
 */

interface Model {
  validate(): void;
}
type ModelCtor = new (data: Json) => Model;

const MODELS: Record<string, ModelCtor> = {};
function register(apiVersion: string, kind: string, ctor: unknown): void {
  MODELS[`${apiVersion}/${kind}`] = ctor as ModelCtor;
}
register('v1', 'ServiceAccount', ServiceAccount);
register('v1', 'ConfigMap', ConfigMap);
register('v1', 'Service', Service);
register('apps/v1', 'Deployment', Deployment);
register('batch/v1', 'CronJob', CronJob);
register('policy/v1', 'PodDisruptionBudget', PodDisruptionBudget);
register('autoscaling/v2', 'HorizontalPodAutoscaler', HorizontalPodAutoscaler);
register('networking.k8s.io/v1', 'NetworkPolicy', NetworkPolicy);
register('admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicy', ValidatingAdmissionPolicy);
register('admissionregistration.k8s.io/v1', 'ValidatingAdmissionPolicyBinding', ValidatingAdmissionPolicyBinding);
register('security.istio.io/v1', 'AuthorizationPolicy', AuthorizationPolicy);
register('security.istio.io/v1', 'PeerAuthentication', PeerAuthentication);
register('networking.istio.io/v1', 'DestinationRule', DestinationRule);
register('networking.istio.io/v1alpha3', 'EnvoyFilter', EnvoyFilter);
register('telemetry.istio.io/v1', 'Telemetry', Telemetry);
register('monitoring.coreos.com/v1', 'PodMonitor', PodMonitor);

/** Parts the packaged schemas leave free-form although the CRD accepts them (none for what the chart renders). */
const OPAQUE: Record<string, readonly string[]> = {};

interface Tracked {
  path: string;
  target: object;
  read: Set<string>;
  gets: number;
}

function track<T>(value: T, path: string, nodes: Tracked[]): T {
  if (value === null || typeof value !== 'object') return value;
  const node: Tracked = { path, target: value, read: new Set(), gets: 0 };
  nodes.push(node);
  const children = new Map<string, unknown>();
  return new Proxy(value, {
    get(target, key, receiver) {
      const v: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== 'string') return v;
      node.gets++;
      node.read.add(key);
      if (!Object.prototype.hasOwnProperty.call(target, key)) return v;
      if (!children.has(key)) children.set(key, track(v, `${path}/${key}`, nodes));
      return children.get(key);
    },
  });
}

/** Problems with one object: schema violations and unknown fields, each as `<path>: <message>`. */
export function validateObject(object: Json): string[] {
  const key = `${String(object['apiVersion'])}/${String(object['kind'])}`;
  const Model = MODELS[key];
  if (!Model) return [`no schema for ${key}`];
  const model = new Model(object);
  const nodes: Tracked[] = [];
  const errors: string[] = [];
  try {
    track(model, '', nodes).validate();
  } catch (err) {
    errors.push(`schema: ${err instanceof Error ? err.message : String(err)}`);
  }
  const opaque = OPAQUE[key] ?? [];
  for (const node of nodes) {
    if (Array.isArray(node.target) || node.gets === 0) continue;
    for (const own of Object.keys(node.target)) {
      const at = `${node.path}/${own}`;
      if (!node.read.has(own) && !opaque.includes(at)) errors.push(`${at}: unknown field`);
    }
  }
  return errors;
}

export function hasSchema(apiVersion: string, kind: string): boolean {
  return `${apiVersion}/${kind}` in MODELS;
}
