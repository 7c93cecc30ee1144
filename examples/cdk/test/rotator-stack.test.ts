// The synthesized stack grants what template.yaml grants and nothing more (node --test).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';

import { RotatorStack, RotatorStackProps } from '../lib/rotator-stack';

const SECRET = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/postgres-AbCdEf';
const MASTER = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/master-GhIjKl';
const KEY = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

// A stand-in for cargo lambda's output: the template does not depend on the binary's content.
const bootstrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsr-cdk-test-'));
fs.writeFileSync(path.join(bootstrapDir, 'bootstrap'), '#!/bin/sh\n', { mode: 0o755 });

function synth(extra: Partial<RotatorStackProps> = {}): Template {
  const app = new App();
  const stack = new RotatorStack(app, 'Test', { bootstrapDir, secretArn: SECRET, ...extra });
  return Template.fromStack(stack);
}

// Every statement of every policy in the template, by Sid.
function statements(template: Template): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const roles = template.findResources('AWS::IAM::Role');
  for (const role of Object.values(roles)) {
    for (const policy of role.Properties.Policies ?? []) {
      for (const statement of policy.PolicyDocument.Statement) {
        assert.ok(statement.Sid, `a statement without Sid in ${policy.PolicyName}`);
        out.set(statement.Sid, statement);
      }
    }
  }
  return out;
}

const FUNCTION_ARN = {
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':lambda:',
      { Ref: 'AWS::Region' },
      ':',
      { Ref: 'AWS::AccountId' },
      ':function:db-secret-rotator',
    ],
  ],
};

test('the rotation statement: four actions, this account, secrets that name this function', () => {
  const rotate = statements(synth()).get('RotateSecretsThatNameThisFunction');
  assert.deepEqual(rotate, {
    Sid: 'RotateSecretsThatNameThisFunction',
    Effect: 'Allow',
    Action: [
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
      'secretsmanager:PutSecretValue',
      'secretsmanager:UpdateSecretVersionStage',
    ],
    Resource: {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':secretsmanager:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          ':secret:*',
        ],
      ],
    },
    Condition: { StringEquals: { 'secretsmanager:resource/AllowRotationLambdaArn': FUNCTION_ARN } },
  });
});

test('without options: exactly the rotation and log statements, one role, no managed policy', () => {
  const template = synth();
  assert.deepEqual([...statements(template).keys()].sort(), [
    'RotateSecretsThatNameThisFunction',
    'WriteOwnLogGroup',
  ]);
  template.resourceCountIs('AWS::IAM::Role', 1);
  template.resourceCountIs('AWS::IAM::Policy', 0);
  template.hasResourceProperties('AWS::IAM::Role', { ManagedPolicyArns: Match.absent() });
  const text = JSON.stringify(template.toJSON());
  assert.ok(!text.includes('GetRandomPassword'), 'no GetRandomPassword: passwords are made inside');
  assert.ok(!text.includes('"*"'), 'no wildcard resource without a VPC');
});

test('logs: only the function\'s own log group, created with a retention', () => {
  const template = synth();
  template.hasResourceProperties('AWS::Logs::LogGroup', {
    LogGroupName: '/aws/lambda/db-secret-rotator',
    RetentionInDays: 90,
  });
  const logGroup = Object.keys(template.findResources('AWS::Logs::LogGroup'))[0];
  assert.deepEqual(statements(template).get('WriteOwnLogGroup'), {
    Sid: 'WriteOwnLogGroup',
    Effect: 'Allow',
    Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    Resource: { 'Fn::GetAtt': [logGroup, 'Arn'] },
  });
});

test('the function: provided.al2023, bootstrap, 128 MB, 30 s, JSON logs, its own role', () => {
  const template = synth();
  const role = Object.keys(template.findResources('AWS::IAM::Role'))[0];
  template.hasResourceProperties('AWS::Lambda::Function', {
    FunctionName: 'db-secret-rotator',
    Runtime: 'provided.al2023',
    Handler: 'bootstrap',
    Architectures: ['arm64'],
    MemorySize: 128,
    Timeout: 30,
    Role: { 'Fn::GetAtt': [role, 'Arn'] },
    LoggingConfig: Match.objectLike({ LogFormat: 'JSON', ApplicationLogLevel: 'INFO' }),
    VpcConfig: Match.absent(),
  });
});

test('only Secrets Manager, on behalf of this account, may invoke; one permission', () => {
  const template = synth();
  template.resourceCountIs('AWS::Lambda::Permission', 1);
  template.hasResourceProperties('AWS::Lambda::Permission', {
    Action: 'lambda:InvokeFunction',
    Principal: 'secretsmanager.amazonaws.com',
    SourceAccount: { Ref: 'AWS::AccountId' },
  });
});

test('the rotation schedule: the secret, this function, 30 days, after the permission', () => {
  const template = synth();
  const fn = Object.keys(template.findResources('AWS::Lambda::Function'))[0];
  const permission = Object.keys(template.findResources('AWS::Lambda::Permission'))[0];
  const schedules = template.findResources('AWS::SecretsManager::RotationSchedule');
  assert.equal(Object.keys(schedules).length, 1);
  const schedule = Object.values(schedules)[0];
  assert.equal(schedule.Properties.SecretId, SECRET);
  assert.deepEqual(schedule.Properties.RotationLambdaARN, { 'Fn::GetAtt': [fn, 'Arn'] });
  assert.deepEqual(schedule.Properties.RotationRules, { ScheduleExpression: 'rate(30 days)' });
  assert.ok(schedule.DependsOn.includes(permission), 'the schedule waits for the permission');
});

test('options: master secret read-only, KMS through Secrets Manager only, VPC interfaces', () => {
  const template = synth({
    masterSecretArn: MASTER,
    kmsKeyArn: KEY,
    subnetIds: ['subnet-0123456789abcdef0'],
    securityGroupIds: ['sg-0123456789abcdef0'],
    rotationStrategy: 'alternating-users',
  });
  const all = statements(template);
  assert.deepEqual(all.get('ReadMasterSecret'), {
    Sid: 'ReadMasterSecret',
    Effect: 'Allow',
    Action: 'secretsmanager:GetSecretValue',
    Resource: MASTER,
  });
  assert.deepEqual(all.get('UseSecretsKeyThroughSecretsManager'), {
    Sid: 'UseSecretsKeyThroughSecretsManager',
    Effect: 'Allow',
    Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
    Resource: KEY,
    Condition: {
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
      },
    },
  });
  assert.deepEqual(all.get('ManageFunctionNetworkInterfaces'), {
    Sid: 'ManageFunctionNetworkInterfaces',
    Effect: 'Allow',
    Action: [
      'ec2:CreateNetworkInterface',
      'ec2:DescribeNetworkInterfaces',
      'ec2:DescribeSubnets',
      'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses',
      'ec2:UnassignPrivateIpAddresses',
    ],
    Resource: '*',
  });
  assert.equal(all.size, 5);
  template.hasResourceProperties('AWS::Lambda::Function', {
    VpcConfig: { SubnetIds: ['subnet-0123456789abcdef0'], SecurityGroupIds: ['sg-0123456789abcdef0'] },
    Environment: { Variables: { ROTATION_STRATEGY: 'alternating-users', MASTER_SECRET_ARNS: MASTER } },
  });
});

test('subnets without security groups are refused', () => {
  assert.throws(() => synth({ subnetIds: ['subnet-0123456789abcdef0'] }), /both subnetIds and securityGroupIds/);
});
