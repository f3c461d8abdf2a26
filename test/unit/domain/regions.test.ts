import { AWS_REGIONS, isAwsRegion } from '../../../lambda/domain/regions';

describe('AWS regions', () => {
  it.each([
    'us-east-1',
    'eu-west-1',
    'ap-east-2',
    'ap-southeast-7',
    'me-west-1',
    'sa-west-1',
    'us-gov-west-1',
    'cn-north-1',
    'mx-central-1',
  ])('accepts %s', (region) => {
    expect(isAwsRegion(region)).toBe(true);
  });

  it.each(['us-east-7', 'mars-1', '', 'US-EAST-1', 'eu-west-1 ', 'aws-global', 'us-iso-east-1'])(
    'refuses %j',
    (region) => {
      expect(isAwsRegion(region)).toBe(false);
    },
  );

  it('lists each region once, sorted', () => {
    expect([...AWS_REGIONS].sort()).toEqual(AWS_REGIONS);
    expect(new Set(AWS_REGIONS).size).toBe(AWS_REGIONS.length);
  });
});
