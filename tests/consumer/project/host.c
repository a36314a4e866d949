/* Runs sums_main from libsums_plugin.so: a C program whose shared library holds libckpt.a. */
int sums_main(int argc, char** argv);
int main(int argc, char** argv) {
  return sums_main(argc, argv);
}
