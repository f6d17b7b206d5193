"""``batchsight model``: our detector's versions on S3, from fit to deploy, rollback and SageMaker.

The modules, in the order a version is made and put to use:

- ``fitting``, ``evaluation``: fit on a dataset's training split, measure on its held-out split
  (``batchsight_tools.dataset.loading`` and ``split``), with the detector's own fit and evaluate;
- ``package``: the package.json of a version; ``gate``: the comparison with the current version;
- ``publish``: staged, conditional, index last; ``registry``: the index and packages in S3,
  read and checked; ``index``: the rules of current, candidate and history;
- ``greengrass``: the gateways' deployment document; ``sagemaker``: model.tar.gz, Model,
  EndpointConfig;
- ``commands``, ``deploying``: the subcommands; ``cli``: the parser; ``arguments``: what the
  commands (and ``batchsight dataset``) share: options, clients, one-line errors.
"""
