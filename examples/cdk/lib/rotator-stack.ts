import * as path from 'node:path';

import { Aws, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** What the stack needs; every optional part mirrors a parameter of the repository's template.yaml. */
export interface RotatorStackProps extends StackProps {
  /** Directory holding the `bootstrap` executable (`cargo lambda build` writes one). */
  readonly bootstrapDir: string;
  /** Full ARN of the existing database secret to rotate. */
  readonly secretArn: string;
  /** Function name; fixed because the role's condition names the function's ARN. */
  readonly functionName?: string;
  /** `arm64` (default) or `x86_64`: must match the architecture `bootstrap` was built for. */
  readonly architecture?: 'arm64' | 'x86_64';
  /** `single-user` (default), `alternating-users` or `dual-password`. */
  readonly rotationStrategy?: 'single-user' | 'alternating-users' | 'dual-password';
  /**
   * Superuser secret, for alternating users and for dual passwords on MariaDB and Redis: the role
   * may read it (never write it).
   */
  readonly masterSecretArn?: string;
  /** Customer managed KMS key of the rotated secrets, used only through Secrets Manager. */
  readonly kmsKeyArn?: string;
  /** Subnets and security groups, both or neither: the function then runs in that VPC. */
  readonly subnetIds?: string[];
  readonly securityGroupIds?: string[];
  /** Days between rotations (default 30). */
  readonly rotationDays?: number;
}

/** The ec2 actions of AWS's managed policy AWSLambdaVPCAccessExecutionRole. */
const VPC_ACTIONS = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
];

/**
 * db-secret-rotator with the same least-privilege execution role as template.yaml, attached to an
 * existing secret with `addRotationSchedule`.
 *
 * The role is written out here and handed to the function without policy updates: the CDK's own
 * rotation wiring would otherwise add `secretsmanager:GetRandomPassword` on `*` (this function
 * generates passwords itself) and an invoke permission without `SourceAccount`.
 */
export class RotatorStack extends Stack {
  readonly function: lambda.Function;
  readonly rotationSchedule: secretsmanager.RotationSchedule;

  constructor(scope: Construct, id: string, props: RotatorStackProps) {
    super(scope, id, props);

    const functionName = props.functionName ?? 'db-secret-rotator';
    const subnetIds = props.subnetIds ?? [];
    const securityGroupIds = props.securityGroupIds ?? [];
    if ((subnetIds.length === 0) !== (securityGroupIds.length === 0)) {
      throw new Error('give both subnetIds and securityGroupIds, or neither');
    }
    const hasVpc = subnetIds.length > 0;

    // Built from the name: a reference to the function itself would make the role depend on it.
    const functionArn = `arn:${Aws.PARTITION}:lambda:${Aws.REGION}:${Aws.ACCOUNT_ID}:function:${functionName}`;

    // Created here (not by Lambda on first write) so that it has a retention period and the role
    // needs no logs:CreateLogGroup.
    const logGroup = new logs.LogGroup(this, 'RotationLogGroup', {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const statements = [
      new iam.PolicyStatement({
        sid: 'RotateSecretsThatNameThisFunction',
        actions: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        resources: [`arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:*`],
        conditions: {
          StringEquals: { 'secretsmanager:resource/AllowRotationLambdaArn': functionArn },
        },
      }),
    ];
    if (props.masterSecretArn) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'ReadMasterSecret',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [props.masterSecretArn],
        }),
      );
    }
    if (props.kmsKeyArn) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'UseSecretsKeyThroughSecretsManager',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.kmsKeyArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `secretsmanager.${Aws.REGION}.amazonaws.com` },
          },
        }),
      );
    }
    const inlinePolicies: Record<string, iam.PolicyDocument> = {
      'rotate-attached-secrets': new iam.PolicyDocument({ statements }),
      'write-own-logs': new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'WriteOwnLogGroup',
            actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            resources: [logGroup.logGroupArn],
          }),
        ],
      }),
    };
    if (hasVpc) {
      // Lambda creates and removes the function's network interfaces with the execution role; the
      // Describe actions take no resource, and the interfaces do not exist yet.
      inlinePolicies['vpc-network-interfaces'] = new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'ManageFunctionNetworkInterfaces',
            actions: VPC_ACTIONS,
            resources: ['*'],
          }),
        ],
      });
    }
    const role = new iam.Role(this, 'RotationRole', {
      description: `Execution role of the rotation function ${functionName}`,
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies,
    });

    const environment: Record<string, string> = {};
    if (props.rotationStrategy) {
      environment.ROTATION_STRATEGY = props.rotationStrategy;
    }
    if (props.masterSecretArn) {
      // The function refuses any other masterarn, before reading it (docs/protocol.md 5.14).
      environment.MASTER_SECRET_ARNS = props.masterSecretArn;
    }
    this.function = new lambda.Function(this, 'RotationFunction', {
      functionName,
      description: 'Rotates database credentials stored in Secrets Manager (db-secret-rotator)',
      code: lambda.Code.fromAsset(path.resolve(props.bootstrapDir)),
      handler: 'bootstrap',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture:
        props.architecture === 'x86_64' ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64,
      memorySize: 128,
      timeout: Duration.seconds(30),
      role: role.withoutPolicyUpdates(),
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      environment,
    });
    if (hasVpc) {
      // Subnet and security group ids as given: no VPC lookup, so synth needs no AWS account.
      const cfn = this.function.node.defaultChild as lambda.CfnFunction;
      cfn.vpcConfig = { subnetIds, securityGroupIds };
    }

    // Only Secrets Manager, and only on behalf of this account, may invoke the function.
    const invokePermission = new lambda.CfnPermission(this, 'SecretsManagerInvokePermission', {
      functionName: this.function.functionArn,
      action: 'lambda:InvokeFunction',
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    });

    // The schedule gets a reference without grant rights, so that it adds nothing to the role and
    // no second invoke permission (see the class comment).
    const rotationFunction = lambda.Function.fromFunctionAttributes(this, 'RotationFunctionRef', {
      functionArn: this.function.functionArn,
      sameEnvironment: true,
      skipPermissions: true,
    });
    const secret = secretsmanager.Secret.fromSecretCompleteArn(this, 'Secret', props.secretArn);
    this.rotationSchedule = secret.addRotationSchedule('RotationSchedule', {
      rotationLambda: rotationFunction,
      automaticallyAfter: Duration.days(props.rotationDays ?? 30),
    });
    // The first rotation starts as soon as the schedule exists: the permission must be there.
    this.rotationSchedule.node.addDependency(invokePermission);
  }
}
