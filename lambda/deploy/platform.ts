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

/**
 * What a teardown removes: one component as it was last deployed, its templates rendered from the
 * install and from the outputs its upstream components recorded.
 */
export interface DestroyRequest {
  readonly install: Install;
  /** The teardown's id: the session name in the install's account, the id the records carry. */
  readonly deployId: string;
  readonly component: string;
  /** The component's spec with every `{{ … }}` rendered as it was for its last deploy. */
  readonly spec: ComponentSpec;
  /**
   * The artifact last synced into the install's registry (`host/repo@digest`), when the component's
   * record names one; a Terraform module is pulled from it again if its files are gone.
   */
  readonly artifact?: { readonly uri: string; readonly digest: string };
}

/** Where components run: ECS, EKS and Terraform through the install's role in AWS; files and real binaries locally. */
export interface Platform {
  apply(request: ApplyRequest): Promise<ApplyResult>;
  /**
   * Removes what `apply` created for the component; removing what is already gone succeeds, so a
   * retried teardown does not fail. Throws with the cause when something could not be removed.
   * Optional only so that apply-only stand-ins (scripts/bench-release.ts) keep compiling; every
   * real platform implements it, and the teardown steps require it.
   */
  destroy(request: DestroyRequest): Promise<void>;
}
