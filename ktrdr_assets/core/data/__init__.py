"""The data stages, in pipeline order: bars -> indicators -> fuzzy -> labels -> features -> splits -> augmentation."""
