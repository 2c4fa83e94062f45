"""The descriptor pool that holds the StateFun protocol messages of this package.

The official SDK registers the same message names in protobuf's default pool under other file names; two
registrations of one name in one pool fail at import. A pool of our own lets both packages live in one process
(a migration in progress, and our differential tests, which use the official SDK as the oracle).
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
