// Package examples holds the consumer recipes the README shows: erp, an ERP program in Go that
// uses package cleartoken; python, the same rule for boto3 and requests; java, for the AWS SDK for
// Java v2. The tests in this directory build and run all three against moto, the Clear emulator
// and the real rotator. The Java recipe is compiled as written with Debian's Jackson and, since
// these machines cannot reach Maven Central, test-only stand-ins for the AWS SDK classes it uses
// (java/testdata/sdkstub), which speak Secrets Manager's wire protocol.
package examples
