"""``batchsight dataset``: one labelled dataset in S3, the input of ``batchsight model fit``.

The modules, in the order a dataset is made and used:

- ``sources``: labelled images from folders, from file names, from the operators' feedback;
- ``manifest``: the manifest line (Ground Truth / Lookout for Vision shape), reading, writing, merging;
- ``build``: the sources merged, the local images uploaded, the manifest written;
- ``loading``: a dataset (a manifest in S3 or on disk, or a labelled folder) read back with its images;
- ``split``: which images are held out for evaluation (by image id, deterministically);
- ``objects``: the S3 helpers they share; ``cli``: the command line.
"""
