//! AMI roles built on the forwarder, producer, consumer and KMS: meter, MDMS collector, pricing publisher, DR operator, KMS service.
