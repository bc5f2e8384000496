# Gateway endpoints (free) for S3 and DynamoDB, interface endpoints for the rest. Each
# endpoint's policy admits only principals of this account, so credentials taken from here
# cannot be used to move data to another account's bucket, table or queue via this VPC.

data "aws_iam_policy_document" "endpoint_this_account_only" {
  # An endpoint policy only narrows what IAM policies allow; actions and resources stay with
  # the callers' own policies, and this one bars principals of other accounts.
  # checkov:skip=CKV_AWS_1:Endpoint policy, not an IAM grant: it only narrows the callers' IAM policies.
  # checkov:skip=CKV_AWS_49:Endpoint policy, not an IAM grant: it only narrows the callers' IAM policies.
  # checkov:skip=CKV_AWS_109:Endpoint policy, not an IAM grant: it only narrows the callers' IAM policies.
  # checkov:skip=CKV_AWS_111:Endpoint policy, not an IAM grant: it only narrows the callers' IAM policies.
  # checkov:skip=CKV_AWS_356:Endpoint policy, not an IAM grant: it only narrows the callers' IAM policies.
  statement {
    sid       = "OnlyThisAccountsPrincipals"
    actions   = ["*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "gateway" {
  for_each = toset(["s3", "dynamodb"])

  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${var.region}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  policy            = data.aws_iam_policy_document.endpoint_this_account_only.json

  tags = { Name = "${local.name}-${each.key}" }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = var.interface_endpoint_services

  vpc_id              = aws_vpc.main.id
  service_name        = "com.amazonaws.${var.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.endpoint_this_account_only.json

  tags = { Name = "${local.name}-${each.key}" }
}
