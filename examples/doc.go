// Package examples holds the consumer recipes the README shows: erp, an ERP program in Go that
// uses package cleartoken; python, the same rule for boto3 and requests; java, for the AWS SDK for
// Java v2. The tests in this directory build and run the Go and Python ones against moto, the
// Clear emulator and the real rotator. The Java recipe is not compiled here: these machines cannot
// reach Maven Central.
package examples
