// gcc -O2 aslr.c -o aslr ; prints where malloc puts blocks: run it twice
#include <stdio.h>
#include <stdlib.h>
int main(void) { printf("malloc(32)=%p malloc(5000)=%p malloc(100000)=%p malloc(1<<20)=%p\n", malloc(32), malloc(5000), malloc(100000), malloc(1 << 20)); return 0; }
