# Two customer-managed keys, both rotated yearly:
#   data:     application data owned by the SAM stack (DynamoDB table, S3 bucket, SQS queues,
#             the alarm topic, CloudWatch log groups) and the VPC flow logs.
#   database: the RDS instance's storage and Performance Insights, and the database secrets.
# Separate keys keep the database readable only by principals granted the database key, whatever
# they may do with the application data.

data "aws_iam_policy_document" "data_key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" is this key only; the root statement hands control to IAM policies, as AWS's default key policy does.
  # checkov:skip=CKV_AWS_111:A key policy's Resource "*" is this key only, not every resource.
  # checkov:skip=CKV_AWS_356:A key policy's Resource "*" is this key only, not every resource.
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Log groups encrypted with this key: the SAM stack's function and access logs, flow logs.
  statement {
    sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"]
    }
  }

  # CloudWatch alarms publish to the SAM stack's alarm topic, which this key encrypts.
  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "data" {
  description             = "${local.name}: application data (DynamoDB, S3, SQS, SNS, logs)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.data_key.json
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

data "aws_iam_policy_document" "database_key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" is this key only; the root statement hands control to IAM policies, as AWS's default key policy does.
  # checkov:skip=CKV_AWS_111:A key policy's Resource "*" is this key only, not every resource.
  # checkov:skip=CKV_AWS_356:A key policy's Resource "*" is this key only, not every resource.
  # RDS and Secrets Manager use the key through grants made with the caller's IAM permissions,
  # so the root statement is all they need.
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "database" {
  description             = "${local.name}: RDS storage, Performance Insights and database secrets"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.database_key.json
}

resource "aws_kms_alias" "database" {
  name          = "alias/${local.name}-database"
  target_key_id = aws_kms_key.database.key_id
}

# The webhook signing secrets' key, apart from the data key: functions seal and open the
# secrets with it (envelope encryption, encryption context {tenant_id, purpose}), and IAM in
# template.yaml grants kms:Decrypt to the functions that sign or show secrets and
# kms:GenerateDataKey only to those that make them. Reading the table, a backup or an export
# of it reveals no secret without this key.
data "aws_iam_policy_document" "signing_key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" is this key only; the root statement hands control to IAM policies, as AWS's default key policy does.
  # checkov:skip=CKV_AWS_111:A key policy's Resource "*" is this key only, not every resource.
  # checkov:skip=CKV_AWS_356:A key policy's Resource "*" is this key only, not every resource.
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "signing" {
  description             = "${local.name}: webhook signing secrets (envelope encryption)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.signing_key.json
}

resource "aws_kms_alias" "signing" {
  name          = "alias/${local.name}-signing-secrets"
  target_key_id = aws_kms_key.signing.key_id
}
