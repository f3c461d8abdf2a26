import {
  CreateRepositoryCommand,
  type ECRClient,
  RepositoryAlreadyExistsException,
} from '@aws-sdk/client-ecr';
import { createRepositoryInput } from '../shared/registry-settings';
import type { RepositoryEnsurer } from './steps';

/** Creates tenant repositories in ECR with the registry's settings (immutable tags, scan on push, tenant key). */
export class EcrRepositories implements RepositoryEnsurer {
  constructor(
    private readonly client: ECRClient,
    private readonly kmsKeyArn: string,
  ) {}

  async ensure(repositoryName: string): Promise<void> {
    try {
      await this.client.send(
        new CreateRepositoryCommand(createRepositoryInput(repositoryName, this.kmsKeyArn)),
      );
    } catch (error) {
      if (error instanceof RepositoryAlreadyExistsException) return;
      throw error;
    }
  }
}
