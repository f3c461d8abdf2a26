import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface TriggersProps {
  /** Encrypts the archive. */
  readonly encryptionKey: kms.IKey;
  /** How long archived events can be replayed. @default Duration.days(30) */
  readonly archiveRetention?: Duration;
}

/**
 * The tenant's EventBridge bus: source pushes (CodeCommit, and GitHub through the webhook route)
 * arrive here and start builds. Every event is archived so a missed trigger can be replayed.
 */
export class Triggers extends Construct {
  public readonly bus: events.IEventBus;

  constructor(scope: Construct, id: string, props: TriggersProps) {
    super(scope, id);
    const bus = new events.EventBus(this, 'Bus', {
      description: 'Ferry tenant triggers: source pushes that start builds',
      kmsKey: props.encryptionKey,
    });
    bus.archive('Archive', {
      description: 'Every trigger event, for replay',
      eventPattern: { account: [bus.env.account] },
      retention: props.archiveRetention ?? Duration.days(30),
      kmsKey: props.encryptionKey,
    });
    this.bus = bus;
  }
}
