# RDS Proxy between the functions and PostgreSQL. Two different logins meet here:
#
#   function --IAM auth token--> RDS Proxy --password from Secrets Manager--> PostgreSQL
#
# Clients authenticate to the proxy with IAM (iam_auth = REQUIRED): a SigV4 token made locally
# from the function's role, allowed by rds-db:connect on
# arn:aws:rds-db:REGION:ACCOUNT:dbuser:PROXY_RESOURCE_ID/DB_USER. The proxy then logs in to
# PostgreSQL as the same user with the password in aws_secretsmanager_secret.app_db, which only
# the proxy's role can read. The functions never see the password.

ephemeral "random_password" "app_db" {
  length = 40
  # Letters and digits only: the password is pasted into a SQL literal at bootstrap.
  special = false
}

resource "aws_secretsmanager_secret" "app_db" {
  # checkov:skip=CKV2_AWS_57:Rotation needs a rotation function inside the VPC that can log in as the app role; until it exists, rotate by bumping db_app_password_version and running ALTER ROLE (terraform/README.md).
  name_prefix             = "${local.name}/db/${var.db_app_username}-"
  description             = "Password of PostgreSQL role ${var.db_app_username}, read only by RDS Proxy"
  kms_key_id              = aws_kms_key.database.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "app_db" {
  secret_id = aws_secretsmanager_secret.app_db.id
  # Write-only: the generated password is sent to Secrets Manager and kept in neither plan nor state.
  secret_string_wo = jsonencode({
    username = var.db_app_username
    password = ephemeral.random_password.app_db.result
  })
  secret_string_wo_version = var.db_app_password_version
}

# The schema owner: migrations log in as it through the proxy (IAM token), the functions never
# do. Its own password, in its own secret, also read only by the proxy.
ephemeral "random_password" "owner_db" {
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "owner_db" {
  # checkov:skip=CKV2_AWS_57:Rotation needs a rotation function inside the VPC; rotate by bumping db_owner_password_version and running ALTER ROLE (terraform/README.md).
  name_prefix             = "${local.name}/db/${var.db_owner_username}-"
  description             = "Password of PostgreSQL role ${var.db_owner_username} (schema owner, migrations), read only by RDS Proxy"
  kms_key_id              = aws_kms_key.database.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "owner_db" {
  secret_id = aws_secretsmanager_secret.owner_db.id
  secret_string_wo = jsonencode({
    username = var.db_owner_username
    password = ephemeral.random_password.owner_db.result
  })
  secret_string_wo_version = var.db_owner_password_version
}

data "aws_iam_policy_document" "proxy_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "proxy" {
  name_prefix        = "${local.name}-rds-proxy-"
  assume_role_policy = data.aws_iam_policy_document.proxy_assume.json
}

data "aws_iam_policy_document" "proxy" {
  statement {
    sid       = "ReadTheRoleSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.app_db.arn, aws_secretsmanager_secret.owner_db.arn]
  }

  statement {
    sid       = "DecryptItThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.database.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "proxy" {
  name   = "read-app-db-secret"
  role   = aws_iam_role.proxy.id
  policy = data.aws_iam_policy_document.proxy.json
}

resource "aws_db_proxy" "main" {
  name                   = local.name
  engine_family          = "POSTGRESQL"
  role_arn               = aws_iam_role.proxy.arn
  vpc_subnet_ids         = aws_subnet.private[*].id
  vpc_security_group_ids = [aws_security_group.proxy.id]
  require_tls            = true
  # Lambda containers idle between invocations; the pool's own idle timeout (10 minutes, in
  # shared/src/postgres) closes connections before the proxy does.
  idle_client_timeout = 1800
  debug_logging       = false

  auth {
    description = "Functions log in as ${var.db_app_username} with IAM tokens"
    auth_scheme = "SECRETS"
    secret_arn  = aws_secretsmanager_secret.app_db.arn
    iam_auth    = "REQUIRED"
  }

  auth {
    description = "Migrations log in as ${var.db_owner_username} with IAM tokens"
    auth_scheme = "SECRETS"
    secret_arn  = aws_secretsmanager_secret.owner_db.arn
    iam_auth    = "REQUIRED"
  }

  depends_on = [
    aws_iam_role_policy.proxy,
    aws_secretsmanager_secret_version.app_db,
    aws_secretsmanager_secret_version.owner_db,
  ]
}

resource "aws_db_proxy_default_target_group" "main" {
  db_proxy_name = aws_db_proxy.main.name

  connection_pool_config {
    connection_borrow_timeout    = var.proxy_borrow_timeout_seconds
    max_connections_percent      = var.proxy_max_connections_percent
    max_idle_connections_percent = 50
  }
}

resource "aws_db_proxy_target" "main" {
  db_proxy_name          = aws_db_proxy.main.name
  target_group_name      = aws_db_proxy_default_target_group.main.name
  db_instance_identifier = aws_db_instance.main.identifier
}
