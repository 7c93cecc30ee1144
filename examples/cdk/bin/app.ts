#!/usr/bin/env node
// The CDK app: one RotatorStack, configured with context values (cdk.json or `--context k=v`):
//   bootstrapDir      directory holding `bootstrap` (default: cargo lambda build's output)
//   secretArn         full ARN of the secret to rotate (required)
//   functionName, architecture (arm64 | x86_64), rotationStrategy, rotationDays,
//   masterSecretArn, kmsKeyArn, subnetIds, securityGroupIds (comma-separated)
import { App } from 'aws-cdk-lib';

import { RotatorStack, RotatorStackProps } from '../lib/rotator-stack';

const app = new App();
const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  return value === undefined || value === '' ? undefined : String(value);
};
const list = (key: string): string[] | undefined =>
  context(key)
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

const secretArn = context('secretArn');
if (!secretArn) {
  throw new Error('set the secret to rotate: cdk synth --context secretArn=arn:aws:secretsmanager:...');
}
const architecture = context('architecture') ?? 'arm64';
if (architecture !== 'arm64' && architecture !== 'x86_64') {
  throw new Error(`architecture must be arm64 or x86_64, not ${architecture}`);
}
const strategy = context('rotationStrategy');
const strategies = ['single-user', 'alternating-users', 'dual-password'];
if (strategy && !strategies.includes(strategy)) {
  throw new Error(`rotationStrategy must be one of ${strategies.join(', ')}, not ${strategy}`);
}
const rotationStrategy = strategy as RotatorStackProps['rotationStrategy'];

new RotatorStack(app, 'DbSecretRotator', {
  description: 'db-secret-rotator and the rotation schedule of one secret',
  bootstrapDir: context('bootstrapDir') ?? '../../target/lambda/db-secret-rotator',
  secretArn,
  functionName: context('functionName'),
  architecture,
  rotationStrategy,
  rotationDays: context('rotationDays') ? Number(context('rotationDays')) : undefined,
  masterSecretArn: context('masterSecretArn'),
  kmsKeyArn: context('kmsKeyArn'),
  subnetIds: list('subnetIds'),
  securityGroupIds: list('securityGroupIds'),
});
