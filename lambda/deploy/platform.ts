import type { Install } from '../domain/control-plane';
import type { ComponentSpec } from '../domain/schemas';

/** What a deploy applies: one component, its templates rendered, with the artifact synced into the install. */
export interface ApplyRequest {
  readonly install: Install;
  readonly deployId: string;
  readonly component: string;
  /** The spec with every `{{ … }}` rendered for this install. */
  readonly spec: ComponentSpec;
  /** The artifact in the install's registry (`host/repo@digest`), or a prebuilt chart. */
  readonly artifact: {
    readonly uri: string;
    readonly digest?: string;
    readonly chart?: { repo: string; name: string; version: string };
  };
}

export interface ApplyResult {
  /** Outputs dependants may reference as `{{ components.NAME.outputs.KEY }}`. */
  readonly outputs: Record<string, string>;
  /** Names among `outputs` whose values must never be stored. */
  readonly sensitiveOutputs?: string[];
}

/** Where components run: ECS, EKS and Terraform through the install's role in AWS; files and real binaries locally. */
export interface Platform {
  apply(request: ApplyRequest): Promise<ApplyResult>;
}
