"""tests/data: the data sets as data (the registry), their readers and sources, image files checked by decoding,
transforms, batch mixing and the loader, and the own-photos recipe."""
