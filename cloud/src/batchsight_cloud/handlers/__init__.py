"""Lambda entry points, one module per function in cloud/template.yaml."""
