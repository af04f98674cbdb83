"""Code the tests and the benchmark scripts share: loading labelled data, scoring the
classifier, comparing the PHP signer. bench/ scripts import it and print figures; tests hold
the same figures as floors. Tests never import bench/."""
