// free(b + malloc_usable_size(b)) where b is a 1 MiB block followed by another live block c.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
int main(){
  char *a=malloc(1<<20), *b=malloc(1<<20), *c=malloc(1<<20);
  memset(a,1,1<<20); memset(b,2,1<<20); memset(c,3,1<<20);
  size_t us=malloc_usable_size(b);
  fprintf(stderr,"b=%p usable=%zu b+usable=%p c=%p\n",b,us,b+us,c);
  free(b+us);
  fprintf(stderr,"free(b+usable) returned; c[0]=%d\n",c[0]);
  char*d=malloc(1<<20); memset(d,4,1<<20);
  fprintf(stderr,"new block d=%p; c[0] now %d (c %s d)\n",d,c[0],c==d?"==":"!=");
  return 0;
}
