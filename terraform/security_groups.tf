# Who may talk to whom, on which port:
#
#   functions --5432--> proxy --5432--> database
#   functions --443---> interface endpoints
#   functions --443---> S3 and DynamoDB (gateway endpoint prefix lists)
#
# The functions' group admits nothing inbound; each other group admits only the one before it.

resource "aws_security_group" "functions" {
  # checkov:skip=CKV2_AWS_5:Attached by the SAM stack (FunctionSecurityGroupId), outside terraform.
  name_prefix = "${local.name}-functions-"
  description = "TriggerIQ Lambda functions in the VPC (FunctionSecurityGroupId in template.yaml)"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-functions" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "functions_to_proxy" {
  security_group_id            = aws_security_group.functions.id
  description                  = "PostgreSQL through RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.proxy.id
}

resource "aws_vpc_security_group_egress_rule" "functions_to_endpoints" {
  security_group_id            = aws_security_group.functions.id
  description                  = "HTTPS to the interface endpoints (SQS, Secrets Manager, KMS, Logs, Bedrock, STS)"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "functions_to_gateway_endpoints" {
  for_each = aws_vpc_endpoint.gateway

  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to ${each.key} through its gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value.prefix_list_id
}

resource "aws_security_group" "endpoints" {
  name_prefix = "${local.name}-endpoints-"
  description = "Interface VPC endpoints; reachable only from the functions"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-endpoints" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_functions" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.functions.id
}

resource "aws_security_group" "proxy" {
  # checkov:skip=CKV2_AWS_5:Attached to aws_db_proxy.main, which checkov does not count as an attachment.
  name_prefix = "${local.name}-proxy-"
  description = "RDS Proxy; reachable only from the functions"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-proxy" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_functions" {
  security_group_id            = aws_security_group.proxy.id
  description                  = "PostgreSQL from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.functions.id
}

resource "aws_vpc_security_group_egress_rule" "proxy_to_database" {
  security_group_id            = aws_security_group.proxy.id
  description                  = "PostgreSQL to the DB instance"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_security_group" "database" {
  name_prefix = "${local.name}-database-"
  description = "RDS PostgreSQL; reachable only from RDS Proxy (and optional admin groups)"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-database" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "database_from_proxy" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.proxy.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_admin" {
  for_each = toset(var.db_admin_security_group_ids)

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from an admin environment (bootstrap, terraform/README.md)"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = each.value
}
